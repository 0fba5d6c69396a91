import Glibc
import Logging
@testable import Reactor
@testable import RelayNode
import Framing

/// The relay on real threads and loopback sockets, two loops: connections
/// accepted on one loop and handed to their pod's home loop on the other,
/// counters read across threads, shutdown from another thread. The point is
/// the cross-thread paths, which `scripts/tsan.sh` runs under ThreadSanitizer.
@Suite(.serialized) struct MultiLoopTests {
    /// A blocking client socket speaking just enough WebSocket.
    final class Client {
        let fd: Int32
        private var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 1 << 20))
        private var buffered: [UInt8] = []
        private(set) var messages: [[UInt8]] = []

        init(port: Int, target: String) throws {
            fd = try blockingLoopbackSocket(port: port)
            write(Array("GET \(target) HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8))
            while Peer.find([13, 10, 13, 10], in: buffered) == nil {
                guard readSome() else { throw SystemError("handshake", code: ECONNRESET) }
            }
            let end = Peer.find([13, 10, 13, 10], in: buffered)!
            let head = String(decoding: buffered[..<end], as: UTF8.self)
            guard head.hasPrefix("HTTP/1.1 101") else { throw SystemError("upgrade refused: \(head)", code: EPROTO) }
            buffered.removeFirst(end + 4)
            decode()
        }

        deinit { Glibc.close(fd) }

        func write(_ bytes: [UInt8]) {
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
                if n <= 0 { return }
                off += n
            }
        }

        func send(_ message: [UInt8]) {
            var frame = [UInt8](repeating: 0, count: WebSocketEncoder.clientFrameSize(payloadLength: message.count))
            let n = message.withUnsafeBytes { p in
                frame.withUnsafeMutableBytes { WebSocketEncoder.writeClientFrame(opcode: .binary, payload: p, maskKey: 0x0102_0304, to: $0.baseAddress!) }
            }
            write(Array(frame[..<n]))
        }

        @discardableResult
        private func readSome() -> Bool {
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return false }
            buffered += buf[..<n]
            return true
        }

        private func decode() {
            guard !buffered.isEmpty else { return }
            buffered.withUnsafeMutableBytes { b in
                _ = decoder.feed(b) { event in
                    if case .message(_, let payload, _) = event { messages.append(Array(payload)) }
                }
            }
            buffered.removeAll()
        }

        /// Reads until `count` messages of `type` arrived (or the deadline).
        func waitFor(_ count: Int, type: UInt8) -> [[UInt8]] {
            while messages.filter({ $0.first == type }).count < count {
                guard readSome() else { break }
                decode()
            }
            return messages.filter { $0.first == type }
        }
    }

    /// `home`: every connection moves to its pod's loop; `accept`: browsers
    /// stay where they were accepted and pods feed mirrors across threads.
    @Test(arguments: ["home", "accept"])
    func podsAcrossTwoLoopsOnRealThreads(placement: String) throws {
        try withRealServer({ $0.browserPlacement = placement }) { server in
            let pods = (0..<6).map { "multi-\($0)" }
            let homes = Set(pods.map { PodHub.hash($0) % 2 })
            #expect(homes.count == 2, "the pods live on both loops")
            var runners: [Client] = []
            var browsers: [[Client]] = []
            for pod in pods {
                runners.append(try Client(port: server.port, target: "/runner/relay?token=\(RelayHarness.token(pod: pod, runner: true))"))
                browsers.append(try (0..<4).map { _ in
                    try Client(port: server.port, target: "/browser/relay?token=\(RelayHarness.token(pod: pod, runner: false))")
                })
            }
            for round in 0..<50 {
                for r in runners { r.send([RelayFrameType.output.rawValue, UInt8(round)]) }
            }
            for (i, bs) in browsers.enumerated() {
                for b in bs {
                    let got = b.waitFor(50, type: RelayFrameType.output.rawValue)
                    #expect(got == (0..<50).map { [RelayFrameType.output.rawValue, UInt8($0)] }, "pod \(i)")
                }
                bs[0].send([RelayFrameType.input.rawValue, UInt8(i)])
            }
            for (i, r) in runners.enumerated() {
                #expect(r.waitFor(1, type: RelayFrameType.input.rawValue).last == [RelayFrameType.input.rawValue, UInt8(i)])
            }
            // Read from this thread while the loops run.
            #expect(AdminReport.stats(server.hubs).contains("\"total_subscribers\":24"))
            let mirrors = server.hubs.reduce(0) { $0 + $1.counters.mirrors.load(ordering: .relaxed) }
            if placement == "home" {
                #expect(mirrors == 0)
            } else {
                // 24 browsers spread by the kernel over two loops: all on their
                // pods' home loops has a chance of 2^-24.
                #expect(mirrors > 0, "browsers on loops other than their pods' home were served through mirrors")
            }
        }
    }
}
