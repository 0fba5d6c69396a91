import Glibc
import Reactor
import Framing

/// What a client stream reports; calls come on its loop.
public protocol HTTP2ClientStreamDelegate: AnyObject {
    /// The server answered `:status 200`: messages may flow.
    func streamOpened(_ stream: HTTP2ClientStream)
    /// One relay message (a WebSocket message's payload, or a gRPC Frame's `data`).
    func stream(_ stream: HTTP2ClientStream, received payload: UnsafeRawBufferPointer)
    /// The outbound buffer drained after a refused send.
    func streamDrained(_ stream: HTTP2ClientStream)
    /// The stream ended: why (status, grpc-status, close code, reset).
    func streamClosed(_ stream: HTTP2ClientStream, reason: String)
}

/// A client HTTP/2 connection on the Reactor (for `loadgen`): h2c with
/// prior knowledge, or h2 over TLS (ALPN), carrying many streams, each a
/// WebSocket over HTTP/2 (RFC 8441) or a `relay.v1.Relay/Attach` gRPC call.
/// The protocol state is the relay's own `HTTP2Session` in the client role.
public final class HTTP2ClientConnection: ConnectionHandler, HTTP2SessionDelegate, Flushable {
    public private(set) var connection: TCPConnection!
    private var session: HTTP2Session!
    @exclusivity(unchecked) private var streams: [Int32: HTTP2ClientStream] = [:]
    /// Streams asked for before the connection opened.
    private var waiting: [HTTP2ClientStream] = []
    private var open = false
    private var sendScheduled = false
    public let authority: String
    public private(set) var failure: String?
    /// When the bytes being delivered were read (one clock read per read).
    @exclusivity(unchecked) public private(set) var lastReadNanos: UInt64 = 0

    private init(authority: String) {
        self.authority = authority
    }

    /// Starts connecting to `address` on `loop` (call on that loop). With
    /// `tls`, its ALPN list must offer "h2".
    public static func connect(to address: SocketAddress, authority: String, on loop: EventLoop, source: SocketAddress? = nil,
                               tls: TLSContext? = nil, serverName: String? = nil) throws -> HTTP2ClientConnection {
        let c = HTTP2ClientConnection(authority: authority)
        c.session = HTTP2Session(role: .client, delegate: c)
        c.connection = try TCPConnection.connect(
            to: address, from: source, on: loop, handler: c, outboundLimit: 64 << 20,
            transport: tls.map { ctx in { fd in try TLSTransport(fd: fd, context: ctx, serverName: serverName) } })
        return c
    }

    public var streamCount: Int { streams.count + waiting.count }

    /// A WebSocket over HTTP/2 to `path` (path and query).
    public func webSocket(path: String, scheme: String, delegate: any HTTP2ClientStreamDelegate) -> HTTP2ClientStream {
        let s = HTTP2ClientStream(connection: self, kind: .webSocket, delegate: delegate)
        s.request = [HTTP2Header(":method", "CONNECT"), HTTP2Header(":protocol", "websocket"), HTTP2Header(":scheme", scheme),
                     HTTP2Header(":path", path), HTTP2Header(":authority", authority), HTTP2Header("sec-websocket-version", "13")]
        start(s)
        return s
    }

    /// A gRPC call to `path` with these metadata headers.
    public func grpc(path: String, scheme: String, metadata: [HTTP2Header], delegate: any HTTP2ClientStreamDelegate) -> HTTP2ClientStream {
        let s = HTTP2ClientStream(connection: self, kind: .grpc, delegate: delegate)
        s.request = [HTTP2Header(":method", "POST"), HTTP2Header(":scheme", scheme), HTTP2Header(":path", path),
                     HTTP2Header(":authority", authority), HTTP2Header("content-type", "application/grpc"),
                     HTTP2Header("te", "trailers")] + metadata
        start(s)
        return s
    }

    private func start(_ s: HTTP2ClientStream) {
        guard open else {
            waiting.append(s)
            return
        }
        let id = session.submitRequest(headers: s.request, body: true, source: Unmanaged.passUnretained(s).toOpaque())
        guard id > 0 else {
            s.ended("request refused by the session (\(id))")
            return
        }
        s.id = id
        streams[id] = s
        scheduleSend()
    }

    func scheduleSend() {
        if !sendScheduled {
            sendScheduled = true
            connection.loop.scheduleFlush(self)
        }
    }

    func resume(_ s: HTTP2ClientStream) {
        if s.id > 0 { session.resumeData(stream: s.id) }
        scheduleSend()
    }

    public func flushQueued() {
        sendScheduled = false
        guard connection.isOpen else { return }
        session.send()
        if session.failure != nil { fail("session: \(session.failure!)") }
    }

    /// Sends what is ready now instead of at the end of the turn.
    public func flushNow() {
        flushQueued()
        connection.flushQueued()
    }

    public func close() { connection?.close(afterFlush: true) }

    private func fail(_ why: String) {
        if failure == nil { failure = why }
        connection.close()
    }

    // MARK: ConnectionHandler

    public func connectionConnected(_ c: TCPConnection) {
        if c.transport.summary.protocolVersion != nil && c.transport.summary.applicationProtocol != "h2" {
            fail("the server did not choose h2 by ALPN")
            return
        }
        open = true
        let pending = waiting
        waiting = []
        for s in pending { start(s) }
        scheduleSend()
    }

    public func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        lastReadNanos = MonotonicClock.now()
        session.receive(bytes.bytes, now: lastReadNanos)
        if let f = session.failure { fail("session: \(f)") }
        scheduleSend()
    }

    public func connectionReadEOF(_ c: TCPConnection) { c.close() }

    public func connectionDrained(_ c: TCPConnection) {}

    public func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        let why = failure ?? error.map { "\($0)" } ?? "connection closed"
        let all = Array(streams.values) + waiting
        streams.removeAll()
        waiting.removeAll()
        for s in all { s.ended(why) }
    }

    // MARK: HTTP2SessionDelegate

    public func http2(_ s: HTTP2Session, headers: [HTTP2Header], stream: Int32, endStream: Bool, tooLarge: Bool) {
        guard let st = streams[stream] else { return }
        st.headers(headers, endStream: endStream)
    }

    public func http2(_ s: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32) {
        // The stream's user data is the stream (the table keeps it alive
        // until nghttp2 reports it closed): no dictionary per DATA chunk.
        if let me = s.userData(stream: stream) {
            Unmanaged<HTTP2ClientStream>.fromOpaque(me)._withUnsafeGuaranteedRef { $0.data(data) }
        }
        s.consume(stream: stream, bytes: data.count)
    }

    public func http2(_ s: HTTP2Session, closed stream: Int32, errorCode: UInt32) {
        streams.removeValue(forKey: stream)?.ended(errorCode == 0 ? "stream closed" : "stream reset (\(errorCode))")
    }

    public func http2(_ s: HTTP2Session, output bytes: UnsafeRawBufferPointer) -> Bool {
        connection.enqueue(copying: bytes, force: true)
        return true
    }

    public func http2(_ s: HTTP2Session, dataReady stream: Int32, max: Int) -> HTTP2DataReady {
        preconditionFailure("every request is submitted with its stream as source")
    }

    public func http2(_ s: HTTP2Session, dataReady stream: Int32, source: UnsafeMutableRawPointer?, max: Int) -> HTTP2DataReady {
        let st = Unmanaged<HTTP2ClientStream>.fromOpaque(source!).takeUnretainedValue()
        let n = min(max, st.outCount)
        if st.outEnds && n == st.outCount { return .bytes(n, end: true, trailers: false) }
        return n == 0 ? .deferred : .bytes(n, end: false, trailers: false)
    }

    public func http2(_ s: HTTP2Session, sendData stream: Int32, frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        preconditionFailure("every request is submitted with its stream as source")
    }

    public func http2(_ s: HTTP2Session, sendData stream: Int32, source: UnsafeMutableRawPointer?,
                      frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        connection.enqueue(copying: frameHeader, force: true)
        Unmanaged<HTTP2ClientStream>.fromOpaque(source!)._withUnsafeGuaranteedRef {
            $0.take(length) { connection.enqueue(copying: $0, force: true) }
        }
        return true
    }
}

/// One stream of an `HTTP2ClientConnection`. Loop-confined.
public final class HTTP2ClientStream {
    public enum Kind: Sendable { case webSocket, grpc }
    public let kind: Kind
    /// The connection owns its streams (through its table) and outlives them.
    public unowned(unsafe) let connection: HTTP2ClientConnection
    public var delegate: (any HTTP2ClientStreamDelegate)?
    var request: [HTTP2Header] = []
    var id: Int32 = -1
    // Touched per message: loop-confined, no runtime exclusivity checks.
    @exclusivity(unchecked) public private(set) var isOpen = false
    @exclusivity(unchecked) private var out: [UInt8] = []
    @exclusivity(unchecked) private var outStart = 0
    /// END_STREAM after what is queued (our side of a WebSocket close).
    var outEnds = false
    /// Bytes this stream may hold unsent before `send` says no.
    public var outboundLimit = 64 << 20
    private var refused = false
    @exclusivity(unchecked) private var session: WebSocketSession
    @exclusivity(unchecked) private var reader = GRPCMessageReader(maxMessageSize: 64 << 20)
    @exclusivity(unchecked) private var maskState = UInt64.random(in: 1...UInt64.max)
    private var trailers: [HTTP2Header]?

    init(connection: HTTP2ClientConnection, kind: Kind, delegate: any HTTP2ClientStreamDelegate) {
        self.connection = connection
        self.kind = kind
        self.delegate = delegate
        session = WebSocketSession(expectMasked: false, maxMessageSize: 64 << 20)
    }

    public var lastReadNanos: UInt64 { connection.lastReadNanos }
    var outCount: Int { out.count - outStart }

    /// Queues one relay message (masked WebSocket frame, or gRPC message).
    /// False when the stream is not open or holds `outboundLimit` bytes.
    @discardableResult
    public func send(_ payload: UnsafeRawBufferPointer, force: Bool = false) -> Bool {
        guard isOpen else { return false }
        if !force && outCount >= outboundLimit {
            refused = true
            return false
        }
        switch kind {
        case .webSocket:
            queueFrame(.binary, payload)
        case .grpc:
            let start = out.count
            out += repeatElement(0, count: GRPCFrameCodec.prefixSize(payloadLength: payload.count))
            out.withUnsafeMutableBytes { _ = GRPCFrameCodec.writePrefix(payloadLength: payload.count, to: $0.baseAddress! + start) }
            out += payload
        }
        connection.resume(self)
        return true
    }

    /// A masked client frame into the outbound bytes.
    private func queueFrame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        let size = WebSocketEncoder.clientFrameSize(payloadLength: payload.count)
        let start = out.count
        out += repeatElement(0, count: size)
        maskState ^= maskState << 13
        maskState ^= maskState >> 7
        maskState ^= maskState << 17
        let mask = UInt32(truncatingIfNeeded: maskState)
        let n = out.withUnsafeMutableBytes { WebSocketEncoder.writeClientFrame(opcode: opcode, payload: payload, maskKey: mask, to: $0.baseAddress! + start) }
        out.removeLast(size - n)
        connection.resume(self)
    }

    func take(_ length: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        out.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[outStart..<(outStart + length)])) }
        outStart += length
        if outStart == out.count {
            out.removeAll(keepingCapacity: true)
            outStart = 0
            if refused {
                refused = false
                delegate?.streamDrained(self)
            }
        } else if outStart > 1 << 20 {
            out.removeFirst(outStart)
            outStart = 0
        }
    }

    func headers(_ h: [HTTP2Header], endStream: Bool) {
        if !isOpen && trailers == nil, let status = h.value(":status") {
            guard status == "200", h.value("grpc-status") == nil else {
                ended("refused: :status \(status)" + (h.value("grpc-status").map { ", grpc-status \($0) \(h.value("grpc-message") ?? "")" } ?? ""))
                return
            }
            isOpen = true
            delegate?.streamOpened(self)
            return
        }
        trailers = h
        // A call is over once its trailers came, whatever our side does.
        if kind == .grpc && endStream { ended("trailers") }
    }

    func data(_ bytes: UnsafeRawBufferPointer) {
        guard let delegate else { return }       // one retain per DATA chunk, not per message
        switch kind {
        case .webSocket:
            var closing = false
            session.receive(UnsafeMutableRawBufferPointer(mutating: bytes)) { action in
                switch action {
                case .deliver(_, let payload, _): delegate.stream(self, received: payload)
                case .send(let opcode, let payload): queueFrame(opcode, payload)
                case .closeTransport: closing = true
                }
            }
            if closing {
                outEnds = true
                connection.resume(self)
                ended("WebSocket closed with \(session.closeCode)")
            }
        case .grpc:
            _ = reader.receive(bytes) { message in
                if case .success(let data) = GRPCFrameCodec.data(of: message) { delegate.stream(self, received: data) }
            }
        }
    }

    func ended(_ why: String) {
        guard delegate != nil else { return }
        isOpen = false
        var reason = why
        if let t = trailers, let status = t.value("grpc-status") { reason = "grpc-status \(status) \(t.value("grpc-message") ?? "")" }
        let d = delegate
        delegate = nil
        d?.streamClosed(self, reason: reason)
    }
}
