import Framing
@testable import Reactor
@testable import RelayNode

/// The client end of one in-memory HTTP/2 connection to a `RelayHarness`
/// relay: nghttp2's client session (the same `HTTP2Session` the relay
/// uses, in the client role) over a `MemoryTransport`. Streams carry a
/// WebSocket (RFC 8441) or a gRPC call; a test can stop consuming a
/// stream's DATA (its window then closes) or stop reading the socket.
final class H2Peer: HTTP2SessionDelegate {
    unowned let harness: RelayHarness
    let transport: MemoryTransport
    private var session: HTTP2Session!

    struct Stream {
        var headers: [[HTTP2Header]] = []
        var data: [UInt8] = []
        var ended = false
        var closed: UInt32?
        var out: [UInt8] = []
        var outEnds = false
    }
    private(set) var streams: [Int32: Stream] = [:]
    /// Streams whose DATA this peer does not give back (their window closes).
    var holding: Set<Int32> = []
    /// Read the socket during `pump` (false: a peer that stopped reading).
    var reads = true
    private(set) var goAway: (code: UInt32, lastStream: Int32)?

    /// The relay's side of the connection (weak: the relay owns it, and a
    /// test must see it go when the relay lets go of it).
    weak var connection: TCPConnection?

    init(harness: RelayHarness, on index: Int = 0, sendBufferSize: Int? = nil) throws {
        self.harness = harness
        let (connection, transport) = try harness.group.members[index].connection(sendBufferSize: sendBufferSize,
                                                                                 outboundLimit: harness.settings.outboundQueueBytes)
        self.transport = transport
        self.connection = connection
        harness.server.accept(connection)
        session = HTTP2Session(role: .client, delegate: self)
        pump()
    }

    /// Exchanges bytes until neither side has more (or reading is off).
    func pump() {
        for _ in 0..<1000 {
            session.send()
            harness.run()
            guard reads else { return }
            let bytes = transport.peerRead()
            if bytes.isEmpty { return }
            session.receive(bytes, now: 0)
        }
    }

    // MARK: Requests

    @discardableResult
    func request(_ headers: [HTTP2Header], body: Bool = false) -> Int32 {
        let id = session.submitRequest(headers: headers, body: body)
        streams[id, default: Stream()] = Stream()
        pump()
        return id
    }

    func get(_ path: String) -> Int32 {
        request([HTTP2Header(":method", "GET"), HTTP2Header(":scheme", "http"), HTTP2Header(":path", path),
                 HTTP2Header(":authority", "relay.test")])
    }

    /// Extended CONNECT for a WebSocket to `path`.
    func webSocket(_ path: String, headers extra: [HTTP2Header] = []) -> Int32 {
        request([HTTP2Header(":method", "CONNECT"), HTTP2Header(":protocol", "websocket"), HTTP2Header(":scheme", "http"),
                 HTTP2Header(":path", path), HTTP2Header(":authority", "relay.test"), HTTP2Header("sec-websocket-version", "13")] + extra,
                body: true)
    }

    /// A `relay.v1.Relay/Attach` call with `token`.
    func attach(token: String) -> Int32 {
        request([HTTP2Header(":method", "POST"), HTTP2Header(":scheme", "http"), HTTP2Header(":path", RelayServer.attachMethod),
                 HTTP2Header(":authority", "relay.test"), HTTP2Header("content-type", "application/grpc"),
                 HTTP2Header("te", "trailers"), HTTP2Header("authorization", "Bearer \(token)")], body: true)
    }

    func reset(_ stream: Int32) {
        session.resetStream(stream, code: .cancel)
        pump()
    }

    func send(_ stream: Int32, _ bytes: [UInt8], end: Bool = false) {
        streams[stream]!.out += bytes
        if end { streams[stream]!.outEnds = true }
        session.resumeData(stream: stream)
        pump()
    }

    /// Gives back what was held on `stream` and consumes from now on.
    func release(_ stream: Int32) {
        holding.remove(stream)
        session.consume(stream: stream, bytes: streams[stream]!.data.count)
        pump()
    }

    /// Bytes queued on `stream` that its window has not let out yet.
    func unsent(_ stream: Int32) -> Int { streams[stream]?.out.count ?? 0 }

    func status(_ stream: Int32) -> String? { streams[stream]?.headers.first?.value(":status") }
    func trailers(_ stream: Int32) -> [HTTP2Header]? { (streams[stream]?.headers.count ?? 0) > 1 ? streams[stream]!.headers.last : nil }

    /// The WebSocket messages (server frames) received on `stream`.
    func messages(_ stream: Int32) -> [[UInt8]] {
        var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 64 << 20))
        var out: [[UInt8]] = []
        var bytes = streams[stream]?.data ?? []
        bytes.withUnsafeMutableBytes { buf in
            _ = decoder.feed(buf) { event in
                if case .message(_, let payload, _) = event { out.append(Array(payload)) }
            }
        }
        return out
    }

    /// The gRPC messages' `data` received on `stream`.
    func grpcMessages(_ stream: Int32) -> [[UInt8]] {
        var reader = GRPCMessageReader(maxMessageSize: 64 << 20)
        var out: [[UInt8]] = []
        (streams[stream]?.data ?? []).withUnsafeBytes { buf in
            _ = reader.receive(buf) { message in
                if case .success(let data) = GRPCFrameCodec.data(of: message) { out.append(Array(data)) }
            }
        }
        return out
    }

    // MARK: HTTP2SessionDelegate

    func http2(_ s: HTTP2Session, headers: [HTTP2Header], stream: Int32, endStream: Bool, tooLarge: Bool) {
        streams[stream, default: Stream()].headers.append(headers)
        if endStream { streams[stream]!.ended = true }
    }

    func http2(_ s: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32) {
        streams[stream, default: Stream()].data += data
        if !holding.contains(stream) { s.consume(stream: stream, bytes: data.count) }
    }

    func http2(_ s: HTTP2Session, endOfStream stream: Int32) { streams[stream]?.ended = true }

    func http2(_ s: HTTP2Session, closed stream: Int32, errorCode: UInt32) { streams[stream]?.closed = errorCode }

    func http2(_ s: HTTP2Session, goAway errorCode: UInt32, lastStream: Int32) { goAway = (errorCode, lastStream) }

    func http2(_ s: HTTP2Session, output bytes: UnsafeRawBufferPointer) -> Bool {
        transport.peerWrite(Array(bytes))
        return true
    }

    func http2(_ s: HTTP2Session, dataReady stream: Int32, max: Int) -> HTTP2DataReady {
        guard let st = streams[stream] else { return .deferred }
        let n = min(max, st.out.count)
        if st.outEnds && n == st.out.count { return .bytes(n, end: true, trailers: false) }
        return n == 0 ? .deferred : .bytes(n, end: false, trailers: false)
    }

    func http2(_ s: HTTP2Session, sendData stream: Int32, frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        transport.peerWrite(Array(frameHeader) + streams[stream]!.out.prefix(length))
        streams[stream]!.out.removeFirst(length)
        return true
    }
}
