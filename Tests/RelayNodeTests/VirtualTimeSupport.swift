import Framing
@testable import Reactor
@testable import RelayNode

/// Helpers for the lifecycle, liveness and replay tests (virtual time only).

/// Seconds as the nanoseconds the settings take.
func nanos(_ seconds: Double) -> UInt64 { UInt64(seconds * 1e9) }

extension RelayHarness {
    /// A runner whose in-memory socket accepts at most `sendBufferSize`
    /// unread bytes (for backpressure tests).
    func runner(_ pod: String, sendBufferSize: Int) throws -> Peer {
        let peer = try upgrade("/runner/relay?token=\(Self.token(pod: pod, runner: true))", sendBufferSize: sendBufferSize)
        #expect(peer.status == 101, "runner upgrade: \(peer.responseHead)")
        return peer
    }

    /// `advance(seconds:)` in one-second steps, calling `beforeEachStep`
    /// before every step (e.g. for a peer that keeps itself heard).
    func advance(seconds: Int, beforeEachStep: () -> Void) {
        for _ in 0..<seconds {
            beforeEachStep()
            advance(seconds: 1)
        }
    }

    var refusedInput: Int { counters.refusedInput.load(ordering: .relaxed) }
    var framesIn: Int { counters.framesIn.load(ordering: .relaxed) }
}

extension Peer {
    /// Pings received since the last `take` (consumes like `take`).
    func takePingCount() -> Int { take().filter { $0 == .ping }.count }

    /// Relay messages since the last `take` whose type is `type`.
    func takeFrames(ofType type: RelayFrameType) -> [[UInt8]] { takeFrames().filter { $0.first == type.rawValue } }

    /// Everything the relay sent, in order (not consumed).
    var everything: [Received] { poll(); return log }
}

/// Error frames (0x24): their codes.
func errorCodes(_ frames: [[UInt8]]) -> [UInt16] {
    frames.compactMap { f in
        guard f.first == RelayFrameType.error.rawValue, f.count >= 3 else { return nil }
        return UInt16(f[1]) << 8 | UInt16(f[2])
    }
}

/// Reads a peer's bytes itself from now on, keeping what `Peer` does not:
/// a Close's reason. The peer stops reading (`reads = false`), so it no
/// longer answers Pings either: keep the tests that use it shorter than two
/// ping intervals.
final class CloseTap {
    let peer: Peer
    private var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 64 << 20))
    private(set) var frames: [[UInt8]] = []
    private var closeFrame: (code: UInt16?, reason: String)?

    init(_ peer: Peer) {
        _ = peer.status             // the response head goes to the peer
        peer.poll()
        peer.reads = false
        self.peer = peer
    }

    /// The Close the relay sent, if any (reads first).
    var close: (code: UInt16?, reason: String)? {
        read()
        return closeFrame
    }

    func read() {
        var raw = peer.transport.peerRead()
        guard !raw.isEmpty else { return }
        raw.withUnsafeMutableBytes { buf in
            let error = decoder.feed(buf) { event in
                switch event {
                case .message(_, let payload, _): frames.append(Array(payload))
                case .close(let code, let reason): closeFrame = (code, String(decoding: reason, as: UTF8.self))
                case .ping, .pong: break
                }
            }
            if let error { Issue.record("relay sent a bad frame: \(error)") }
        }
    }
}
