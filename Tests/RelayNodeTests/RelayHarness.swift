import Glibc
import Logging
@testable import Reactor
@testable import RelayNode
import Framing
@_exported import Testing

/// A relay on an `EmbeddedEventLoop`: no socket, no thread, no waiting.
/// Clients are `Peer`s over in-memory transports; time moves only in
/// `advance(seconds:)`, during which well-behaved peers answer Pings.
final class RelayHarness {
    static let secret = "harness-secret"
    /// One loop unless asked for more (pods then spread over them by key).
    let group: EmbeddedLoopGroup
    let server: RelayServer
    let settings: RelaySettings
    private(set) var peers: [Peer] = []

    init(loops: Int = 1, _ configure: (inout RelaySettings) -> Void = { _ in }) throws {
        group = try EmbeddedLoopGroup(count: loops)
        var s = RelaySettings()
        s.jwtSecrets = [Array(Self.secret.utf8)]
        s.loops = loops
        configure(&s)
        settings = s
        server = try RelayServer(settings: s, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
                                 webPage: WebPage(enabled: false, assets: [:], missing: []), loops: group.loops)
    }

    var loop: EventLoop { group.members[0].loop }
    /// Loop 0's counters (every loop's, summed, for the ones that add up).
    var counters: RelayCounters { server.hubs[0].counters }

    /// The loop a pod is homed on.
    func home(of pod: String) -> Int { Int(PodHub.hash(pod) % UInt64(group.members.count)) }

    /// A new connection, accepted by loop `on`, that has sent nothing yet.
    func connect(sendBufferSize: Int? = nil, on index: Int = 0) throws -> Peer {
        let (connection, transport) = try group.members[index].connection(sendBufferSize: sendBufferSize, outboundLimit: settings.outboundQueueBytes)
        server.accept(connection)
        let peer = Peer(harness: self, transport: transport)
        peers.append(peer)
        return peer
    }

    static func token(pod: String, runner: Bool, scope: String? = nil, secret: String = secret) -> String {
        DevMode.mint(secret: secret, podKey: pod, userID: runner ? 0 : 7, issuer: "agentsmesh-relay", lifetime: 3600, scope: scope)
    }

    /// Sends an upgrade request for `target` and runs the loop.
    func upgrade(_ target: String, headers: [(String, String)] = [], sendBufferSize: Int? = nil, on index: Int = 0) throws -> Peer {
        let peer = try connect(sendBufferSize: sendBufferSize, on: index)
        var head = "GET \(target) HTTP/1.1\r\nHost: relay.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        peer.transport.peerWrite(Array((head + "\r\n").utf8))
        run()
        return peer
    }

    func runner(_ pod: String, ext: Bool = false, on index: Int = 0) throws -> Peer {
        let peer = try upgrade("/runner/relay?token=\(Self.token(pod: pod, runner: true))" + (ext ? "&ext=1" : ""), on: index)
        #expect(peer.status == 101, "runner upgrade: \(peer.responseHead)")
        return peer
    }

    func browser(_ pod: String, ext: Bool = false, scope: String? = nil, resume: (epoch: UInt32, seq: UInt64)? = nil,
                 sendBufferSize: Int? = nil, on index: Int = 0) throws -> Peer {
        var target = "/browser/relay?token=\(Self.token(pod: pod, runner: false, scope: scope))"
        if ext { target += "&ext=1" }
        if let resume { target += "&epoch=\(resume.epoch)&seq=\(resume.seq)" }
        let peer = try upgrade(target, sendBufferSize: sendBufferSize, on: index)
        #expect(peer.status == 101, "browser upgrade: \(peer.responseHead)")
        return peer
    }

    func run() { group.run() }

    /// Moves time on in steps of at most a second; between steps every
    /// responsive peer reads what it got and answers Pings, as a client
    /// would.
    func advance(seconds: Double) {
        var left = UInt64(seconds * 1e9)
        while left > 0 {
            let step = min(left, 1_000_000_000)
            group.advance(by: step)
            left -= step
            for p in peers where p.answersPings { p.poll() }
            run()
        }
    }
}

/// A connected, blocking client socket to 127.0.0.1:`port` whose reads
/// give up after 10 s (a generous deadline, not a measurement).
func blockingLoopbackSocket(port: Int) throws -> Int32 {
    let fd = try Socket.connect(to: SocketAddress(host: "127.0.0.1", port: port))
    var flags = fcntl(fd, F_GETFL)
    flags &= ~O_NONBLOCK
    _ = fcntl(fd, F_SETFL, flags)
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    // Wait for the nonblocking connect to finish.
    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
    _ = poll(&p, 1, 10_000)
    return fd
}

/// A relay on real threads and a loopback port (for the multi-loop tests
/// `scripts/tsan.sh` runs); `body` runs while it serves, then it stops.
func withRealServer(loops: Int = 2, _ configure: (inout RelaySettings) -> Void = { _ in },
                    _ body: (RelayServer) throws -> Void) throws {
    var settings = RelaySettings()
    settings.host = "127.0.0.1"
    settings.port = 0
    settings.loops = loops
    settings.jwtSecrets = [Array(RelayHarness.secret.utf8)]
    configure(&settings)
    let server = try RelayServer(settings: settings, logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() },
                                 webPage: WebPage(enabled: false, assets: [:], missing: []))
    try server.start(handlingSignals: false)
    defer {
        server.stop()
        server.wait()
    }
    try body(server)
}

/// What a peer received, decoded.
enum Received: Equatable, CustomStringConvertible {
    case binary([UInt8])
    case text([UInt8])
    case ping
    case pong
    case close(UInt16?)

    var description: String {
        switch self {
        case .binary(let b): return "binary(type 0x\(String(b.first ?? 0, radix: 16)), \(b.count) B)"
        case .text(let b): return "text(\(b.count) B)"
        case .ping: return "ping"
        case .pong: return "pong"
        case .close(let c): return "close(\(c.map(String.init) ?? "-"))"
        }
    }
}

/// The client end of one in-memory connection: writes masked frames, reads
/// and decodes the relay's bytes.
final class Peer {
    unowned let harness: RelayHarness
    let transport: MemoryTransport
    private(set) var responseHead = ""
    private var headDone = false
    private var raw: [UInt8] = []
    private var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 64 << 20))
    /// Everything decoded so far, in order (not consumed by `take`).
    private(set) var log: [Received] = []
    private var taken = 0
    /// Answer Pings during `advance` (a live client); false: a silent peer.
    var answersPings = true
    /// Read during `advance`; false: a peer that stopped reading.
    var reads = true

    init(harness: RelayHarness, transport: MemoryTransport) {
        self.harness = harness
        self.transport = transport
    }

    var status: Int? {
        poll()
        let parts = responseHead.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) : nil
    }

    /// Reads and decodes everything the relay has written.
    func poll() {
        guard reads else { return }
        raw += transport.peerRead()
        if !headDone {
            guard let end = Self.find([13, 10, 13, 10], in: raw) else { return }
            responseHead = String(decoding: raw[..<end], as: UTF8.self)
            raw.removeFirst(end + 4)
            headDone = true
            // A refused upgrade: the rest is a body, not frames.
            guard responseHead.hasPrefix("HTTP/1.1 101") else {
                responseHead += "\n" + String(decoding: raw, as: UTF8.self)
                raw.removeAll()
                return
            }
        }
        guard !raw.isEmpty, responseHead.hasPrefix("HTTP/1.1 101") else { return }
        var pings = 0
        raw.withUnsafeMutableBytes { buf in
            let error = decoder.feed(buf) { event in
                switch event {
                case .message(let opcode, let payload, _):
                    log.append(opcode == .text ? .text(Array(payload)) : .binary(Array(payload)))
                case .ping:
                    log.append(.ping)
                    pings += 1
                case .pong:
                    log.append(.pong)
                case .close(let code, _):
                    log.append(.close(code))
                }
            }
            if let error { Issue.record("relay sent a bad frame: \(error)") }
        }
        raw.removeAll()
        if answersPings { for _ in 0..<pings { sendFrame(.pong, []) } }
    }

    /// What arrived since the last `take`.
    func take() -> [Received] {
        poll()
        defer { taken = log.count }
        return Array(log[taken...])
    }

    /// Relay messages (binary) since the last `take`, as [type] + payload.
    func takeFrames() -> [[UInt8]] {
        take().compactMap { if case .binary(let b) = $0 { return b } else { return nil } }
    }

    /// Types of the relay messages since the last `take`.
    func takeTypes() -> [UInt8] { takeFrames().map { $0.first ?? 0 } }

    /// The close code the relay sent, if it sent one.
    var closeCode: UInt16?? {
        poll()
        for r in log { if case .close(let c) = r { return .some(c) } }
        return nil
    }

    /// The relay closed the TCP connection.
    var isClosed: Bool { transport.isClosed }

    /// A masked client frame, as a client sends it.
    static func clientFrame(_ opcode: WebSocketOpcode = .binary, _ payload: [UInt8]) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: WebSocketEncoder.clientFrameSize(payloadLength: payload.count))
        let n = payload.withUnsafeBytes { p in
            frame.withUnsafeMutableBytes { WebSocketEncoder.writeClientFrame(opcode: opcode, payload: p, maskKey: 0x1234_5678, to: $0.baseAddress!) }
        }
        return Array(frame[..<n])
    }

    func sendFrame(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        transport.peerWrite(Self.clientFrame(opcode, payload))
    }

    /// Relay messages as one write, so the relay reads many in one go. Returns them.
    @discardableResult
    func sendAtOnce(_ messages: [[UInt8]]) -> [[UInt8]] {
        transport.peerWrite(messages.flatMap { Self.clientFrame(.binary, $0) })
        harness.run()
        return messages
    }

    /// Sends a relay message `[type] + payload` and runs the loop.
    func send(_ type: UInt8, _ payload: [UInt8] = []) {
        sendFrame(.binary, [type] + payload)
        harness.run()
    }

    func send(_ type: RelayFrameType, _ payload: [UInt8] = []) { send(type.rawValue, payload) }

    /// Sends a WebSocket Close and runs the loop.
    func close(code: UInt16 = 1000) {
        sendFrame(.close, WebSocketEncoder.closePayload(code: code, reason: ""))
        harness.run()
    }

    /// The TCP connection goes away without a Close (peer's FIN).
    func drop() {
        transport.peerShutdown()
        harness.run()
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }
}

extension Array where Element == UInt8 {
    init(_ type: RelayFrameType, _ text: String) { self = [type.rawValue] + Array(text.utf8) }
}
