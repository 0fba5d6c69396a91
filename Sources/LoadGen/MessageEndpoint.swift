import Reactor
import Framing
import RelayClient

/// One client connection of a scenario, whatever the target speaks: ready
/// once subscribed, then messages in and out. Loop-confined.
class MessageEndpoint: WebSocketClientDelegate {
    var client: WebSocketClient!
    var onReady: (() -> Void)?
    var onMessage: ((UnsafeRawBufferPointer) -> Void)?
    var onClosed: ((String) -> Void)?
    var onDrained: (() -> Void)?
    /// The hot path instead of `onMessage`: the fan-out pod this subscriber
    /// reports to (it outlives the run) and the subscriber's number in it.
    /// No closure context and no reference counting per message.
    @exclusivity(unchecked) var fanoutPod: Unmanaged<FanoutPod>?
    @exclusivity(unchecked) var fanoutIndex = 0
    private(set) var ready = false

    /// Sends one application message; false when refused (queue bound).
    func send(_ payload: UnsafeRawBufferPointer) -> Bool { client.send(.binary, payload) }

    /// Writes what is queued now instead of at the end of the loop turn.
    func flushNow() { client.connection.flushQueued() }
    // (H2Endpoint overrides send, flushNow and close: it has a stream, not a client.)

    func markReady() {
        guard !ready else { return }
        ready = true
        onReady?()
    }

    func close() { client?.close() }

    func clientOpened(_ client: WebSocketClient) { markReady() }

    func client(_ client: WebSocketClient, received opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        deliver(payload, at: client.lastReadNanos)
    }

    @inline(__always)
    func deliver(_ payload: UnsafeRawBufferPointer, at now: UInt64) {
        if let pod = fanoutPod {
            pod._withUnsafeGuaranteedRef { $0.received(payload, from: fanoutIndex, at: now) }
        } else {
            onMessage?(payload)
        }
    }

    func clientDrained(_ client: WebSocketClient) { onDrained?() }

    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?) {
        onClosed?(error ?? "closed with \(code.map(String.init) ?? "no code")")
    }
}

/// NATS text protocol over WebSocket (nats-server's websocket listener):
/// INFO → CONNECT (+ SUB) + PING → PONG means ready; PUB out, MSG in, PING
/// answered with PONG.
final class NatsEndpoint: MessageEndpoint {
    let subject: String
    let subscribe: Bool
    private var pending: [UInt8] = []
    private var awaitingPayload: Int? = nil
    private var connected = false
    private var scratch: [UInt8] = []
    private let pubHeader: [UInt8]

    init(subject: String, subscribe: Bool) {
        self.subject = subject
        self.subscribe = subscribe
        pubHeader = Array("PUB \(subject) ".utf8)
    }

    override func clientOpened(_ client: WebSocketClient) {}

    override func send(_ payload: UnsafeRawBufferPointer) -> Bool {
        scratch.removeAll(keepingCapacity: true)
        scratch += pubHeader
        scratch += Array(String(payload.count).utf8)
        scratch += [13, 10]
        scratch += payload
        scratch += [13, 10]
        return scratch.withUnsafeBytes { client.send(.binary, $0) }
    }

    private func sendLine(_ s: String) { client.send(.binary, bytes: Array(s.utf8), force: true) }

    override func client(_ client: WebSocketClient, received opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        if pending.isEmpty {
            let used = parse(payload)
            if used < payload.count { pending += UnsafeRawBufferPointer(rebasing: payload[used...]) }
        } else {
            pending += payload
            let used = pending.withUnsafeBytes { parse($0) }
            pending.removeFirst(used)
        }
    }

    /// Parses complete protocol items; returns the bytes consumed.
    private func parse(_ b: UnsafeRawBufferPointer) -> Int {
        var pos = 0
        while pos < b.count {
            if let n = awaitingPayload {
                guard b.count - pos >= n + 2 else { return pos }
                deliver(UnsafeRawBufferPointer(rebasing: b[pos..<(pos + n)]), at: client.lastReadNanos)
                pos += n + 2
                awaitingPayload = nil
                continue
            }
            var end = pos
            while end + 1 < b.count && !(b[end] == 13 && b[end + 1] == 10) { end += 1 }
            guard end + 1 < b.count else { return pos }
            let line = UnsafeRawBufferPointer(rebasing: b[pos..<end])
            pos = end + 2
            if line.starts(with: [77, 83, 71, 32]) {                 // "MSG "
                var size = 0, i = line.count - 1, scale = 1
                while i >= 0 && line[i] != 32 { size += Int(line[i] - 48) * scale; scale *= 10; i -= 1 }
                awaitingPayload = size
            } else if line.starts(with: [80, 73, 78, 71]) {          // PING
                sendLine("PONG\r\n")
            } else if line.starts(with: [80, 79, 78, 71]) {          // PONG
                markReady()
            } else if line.starts(with: [73, 78, 70, 79]) {          // INFO
                guard !connected else { continue }
                connected = true
                var s = "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":true,\"protocol\":1}\r\n"
                if subscribe { s += "SUB \(subject) 1\r\n" }
                s += "PING\r\n"
                sendLine(s)
            } else if line.starts(with: [45, 69, 82, 82]) {          // -ERR
                onClosed?("nats: " + String(decoding: line, as: UTF8.self))
            }
        }
        return pos
    }
}
