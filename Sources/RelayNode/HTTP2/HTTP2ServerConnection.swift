import Reactor
import Framing
import Logging

/// How an HTTP/2 stream that asks for a relay call is answered.
enum StreamRoute {
    /// A plain response (admin routes, refusals).
    case respond(HTTPReply)
    /// A trailers-only gRPC refusal.
    case refuse(GRPCStatus, String)
    /// Open the stream; `makeEndpoint` runs on this connection's loop.
    case open(maxMessageSize: Int, makeEndpoint: () -> any MessageStreamEndpoint)
}

/// What an HTTP/2 connection needs from its server.
struct HTTP2Context {
    var settings: HTTP2Settings
    /// Each stream's outbound bound (the relay's per-subscriber bound).
    var streamOutboundLimit: Int
    var closeTimeout: UInt64
    var liveness: LivenessMonitor
    /// The loop's shared gRPC encodings of pod frames.
    var grpcEncodings: GRPCEncodingCache
    /// The loop's permessage-deflate (nil: compression off).
    var deflate: DeflateEncodingCache?
    var transports: TransportCounters
    var logger: Logger
    /// A plain request (`GET /health`, …) or an extended CONNECT.
    var route: (HTTPRequestHead, _ webSocket: Bool) -> StreamRoute
    var routeGRPC: (HTTPRequestHead) -> StreamRoute
}

/// An HTTP/2 connection on the relay's port (h2c with prior knowledge, or
/// h2 chosen by ALPN): nghttp2's session (`HTTP2Session`, no I/O) carried
/// out on a TCP connection, with its streams.
///
/// Output: frames nghttp2 makes are copied into the connection's arena and
/// queued; DATA is a 9-byte header from the arena then the stream's own
/// slices by reference. Everything waits in the TCP connection's one
/// queue, which the session stops filling past `socketHighWater` (the
/// send callbacks say "would block"; `connectionDrained` resumes), so a
/// peer that does not read holds at most that much here, and its streams'
/// queues fill up to their own bounds, where the pod's policy lags them.
///
/// Liveness: one PING per interval for all streams; a connection that
/// answers nothing for two intervals is closed. Drain: GOAWAY with the
/// last stream id, then every WebSocket stream gets Close 1001 and every
/// gRPC call ends UNAVAILABLE; the connection closes when the streams are done.
///
/// Loop-confined.
final class HTTP2ServerConnection: ConnectionHandler, HTTP2SessionDelegate, Flushable, LivenessMember {
    /// Valid until `connectionClosed` (`closed`): the loop's flush list may
    /// hold this handler past its connection, so every late entry checks.
    unowned(unsafe) let connection: TCPConnection
    unowned let loop: EventLoop
    @exclusivity(unchecked) private var closed = false
    let kind: TransportCounters.Connection
    private let context: HTTP2Context
    // Touched per DATA frame: no runtime exclusivity checks (loop-confined,
    // and never accessed re-entrantly in place).
    private var session: HTTP2Session!
    @exclusivity(unchecked) private var streams: [Int32: HTTP2Stream] = [:]
    @exclusivity(unchecked) var arena = ByteArena()
    @exclusivity(unchecked) private var sendScheduled = false
    @exclusivity(unchecked) private var waitingForSocket = false
    private var lastHeard: UInt64
    var livenessIndex: Int32 = -1
    private var draining = false

    /// Bytes queued on the socket past which the session stops adding more.
    static let socketHighWater = 256 * 1024

    init(connection: TCPConnection, kind: TransportCounters.Connection, context: HTTP2Context) {
        self.connection = connection
        loop = connection.loop
        self.kind = kind
        self.context = context
        lastHeard = connection.loop.now()
        transportSummary = connection.transport.summary
        session = HTTP2Session(role: .server, settings: context.settings, delegate: self)
        context.transports.opened(kind)
        context.liveness.add(self)
        scheduleSend()
    }

    private(set) var transportSummary = TransportSummary()

    // MARK: ConnectionHandler

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        lastHeard = loop.turnStart
        receive(bytes.bytes)
    }

    /// Bytes of this connection (the first read comes from the HTTP/1 sniffer).
    func receive(_ bytes: UnsafeRawBufferPointer) {
        session.receive(bytes, now: loop.now())
        reportFailure()
        scheduleSend()
    }

    /// The session's failure (ours or nghttp2's GOAWAY), counted and logged once.
    private var failureReported = false
    private func reportFailure() {
        guard !failureReported, let failure = session.failure else { return }
        failureReported = true
        context.transports.goaway(reason: failure)
        context.logger.info("http2 connection ended", metadata: ["reason": "\(failure)", "transport": "\(kind.name)"])
    }

    func connectionReadEOF(_ c: TCPConnection) {
        // The peer will send nothing more: finish what is queued, then close.
        c.close(afterFlush: true)
    }

    func connectionDrained(_ c: TCPConnection) {
        guard waitingForSocket else { return }
        waitingForSocket = false
        scheduleSend()
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        closed = true
        context.liveness.remove(self)
        context.transports.closed(kind)
        let all = streams
        streams.removeAll()
        for (_, st) in all { forget(st, errorCode: HTTP2ErrorCode.cancel.rawValue) }
    }

    // MARK: Output

    func scheduleSend() {
        if !sendScheduled && !closed {
            sendScheduled = true
            loop.scheduleFlush(self)
        }
    }

    func flushQueued() {
        sendScheduled = false
        guard !closed, connection.isOpen else { return }
        session.send()
        reportFailure()
        if session.failure != nil || session.isFinished {
            connection.close(afterFlush: true)
        }
    }

    func resume(_ stream: HTTP2Stream) {
        session.resumeData(stream: stream.id)
        scheduleSend()
    }

    func consume(_ stream: HTTP2Stream, _ n: Int) {
        session.consume(stream: stream.id, bytes: n)
        scheduleSend()
    }

    func resetStream(_ stream: HTTP2Stream, code: HTTP2ErrorCode) {
        session.resetStream(stream.id, code: code)
        scheduleSend()
    }

    func submitTrailers(_ stream: HTTP2Stream, _ trailers: [HTTP2Header]) {
        session.submitTrailers(stream: stream.id, headers: trailers)
    }

    private var socketFull: Bool {
        if connection.queuedBytes < Self.socketHighWater { return false }
        if !waitingForSocket {
            waitingForSocket = true
            connection.notifyWhenDrained()
        }
        return true
    }

    private func enqueueCopy(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count <= ByteArena.maxReserve {
            let (start, slice) = arena.reserve(bytes.count)
            start.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            connection.enqueue(slice, force: true)
        } else {
            connection.enqueue(copying: bytes, force: true)
        }
    }

    func http2(_ s: HTTP2Session, output bytes: UnsafeRawBufferPointer) -> Bool {
        if socketFull { return false }
        enqueueCopy(bytes)
        return true
    }

    // Every DATA source is submitted with its stream as `source` (the
    // table holds the stream until nghttp2 reports it closed, after which
    // nghttp2 asks nothing more of it): no lookup by id per frame.

    func http2(_ s: HTTP2Session, dataReady stream: Int32, max: Int) -> HTTP2DataReady {
        preconditionFailure("every DATA source has its stream")
    }

    func http2(_ s: HTTP2Session, dataReady stream: Int32, source: UnsafeMutableRawPointer?, max: Int) -> HTTP2DataReady {
        Unmanaged<HTTP2Stream>.fromOpaque(source!)._withUnsafeGuaranteedRef { $0.dataReady(max: max) }
    }

    func http2(_ s: HTTP2Session, sendData stream: Int32, frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        preconditionFailure("every DATA source has its stream")
    }

    func http2(_ s: HTTP2Session, sendData stream: Int32, source: UnsafeMutableRawPointer?,
               frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        if socketFull { return false }
        enqueueCopy(frameHeader)
        let c = connection
        Unmanaged<HTTP2Stream>.fromOpaque(source!)._withUnsafeGuaranteedRef { $0.takeData(length) { c.enqueue($0, force: true) } }
        return true
    }

    private func submit(_ st: HTTP2Stream, headers: [HTTP2Header]) {
        let me = Unmanaged.passUnretained(st).toOpaque()
        session.setUserData(stream: st.id, me)
        session.submitResponse(stream: st.id, headers: headers, body: true, source: me)
    }

    // MARK: Input

    func http2(_ s: HTTP2Session, headers: [HTTP2Header], stream id: Int32, endStream: Bool, tooLarge: Bool) {
        if let existing = streams[id] {
            // Trailers from the peer: its side is done.
            if endStream { existing.peerEnded() }
            return
        }
        if tooLarge {
            respond(id, .text(431, "request header fields too large\n"))
            return
        }
        // A CONNECT other than RFC 8441's has no :path (RFC 9113 §8.5).
        if headers.value(":method") == "CONNECT" && headers.value(":protocol") != "websocket" {
            respond(id, .text(501, "only the websocket protocol is supported over CONNECT\n"))
            return
        }
        guard let head = HTTPRequestHead(http2: headers) else {
            session.resetStream(id, code: .protocolError)
            return
        }
        if head.method == "CONNECT" {
            guard head.headers["protocol"] == "websocket" else {
                respond(id, .text(501, "only the websocket protocol is supported over CONNECT\n"))
                return
            }
            openStream(id, route: context.route(head, true), webSocket: true, head: head)
        } else if head.method == "POST", let type = head.headers["content-type"], type.hasPrefix("application/grpc") {
            openStream(id, route: context.routeGRPC(head), webSocket: false, head: head)
        } else {
            let route = context.route(head, false)
            if case .respond(let reply) = route {
                respond(id, reply, headOnly: head.method == "HEAD")
            } else {
                respond(id, .text(400, "use an extended CONNECT (RFC 8441) for a WebSocket over HTTP/2\n"))
            }
        }
    }

    private func openStream(_ id: Int32, route: StreamRoute, webSocket: Bool, head: HTTPRequestHead) {
        switch route {
        case .respond(let reply):
            respond(id, reply)
        case .refuse(let status, let message):
            refuseCall(id, status, message)
        case .open(let maxMessageSize, let makeEndpoint):
            if draining {
                if webSocket { respond(id, .text(503, "relay shutting down\n")) } else { refuseCall(id, .unavailable, "relay shutting down") }
                return
            }
            let limit = context.streamOutboundLimit
            if webSocket {
                // permessage-deflate as over HTTP/1.1 (RFC 8441 §5: the same extension headers).
                let agreement = context.deflate == nil ? nil
                    : PerMessageDeflateNegotiation.negotiate(head.headers.values("sec-websocket-extensions"))
                let st = HTTP2WebSocketStream(owner: self, id: id, outboundLimit: limit, maxMessageSize: maxMessageSize,
                                              closeTimeout: context.closeTimeout, deflate: agreement == nil ? nil : context.deflate)
                streams[id] = st
                context.transports.opened(.wsOverH2)
                var response = [HTTP2Header(":status", "200")]
                if let agreement { response.append(HTTP2Header("sec-websocket-extensions", agreement.responseValue)) }
                submit(st, headers: response)
                let endpoint = makeEndpoint()
                st.endpoint = endpoint
                endpoint.streamOpened(st)
            } else {
                let timeout = head.headers["grpc-timeout"].flatMap(GRPCTimeout.nanoseconds)
                let st = GRPCStream(owner: self, id: id, outboundLimit: limit, maxMessageSize: maxMessageSize, timeout: timeout,
                                    encodings: context.grpcEncodings)
                streams[id] = st
                context.transports.opened(.grpc)
                submit(st, headers: [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")])
                let endpoint = makeEndpoint()
                st.endpoint = endpoint
                endpoint.streamOpened(st)
            }
            scheduleSend()
        }
    }

    /// A complete response on stream `id`; the stream ends after it.
    private func respond(_ id: Int32, _ reply: HTTPReply, headOnly: Bool = false) {
        var headers = [HTTP2Header(":status", String(reply.status)),
                       HTTP2Header("content-type", reply.contentType),
                       HTTP2Header("content-length", String(reply.body.count))]
        for (name, value) in reply.headers { headers.append(HTTP2Header(name.lowercased(), value)) }
        if reply.body.isEmpty || headOnly {
            session.submitResponse(stream: id, headers: headers, body: false)
        } else {
            let st = HTTP2Stream(owner: self, id: id, outboundLimit: reply.body.count)
            streams[id] = st
            context.transports.opened(.h2Request)
            reply.body.withUnsafeBytes { _ = st.enqueue(copying: $0, force: true) }
            st.finish()
            submit(st, headers: headers)
        }
        scheduleSend()
    }

    /// A trailers-only gRPC response: the call ends before it started.
    private func refuseCall(_ id: Int32, _ status: GRPCStatus, _ message: String) {
        session.submitResponse(stream: id, headers: [
            HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc"),
            HTTP2Header("grpc-status", String(status.rawValue)),
            HTTP2Header("grpc-message", GRPCStatus.encodeMessage(message)),
        ], body: false)
        scheduleSend()
    }

    func http2(_ s: HTTP2Session, data: UnsafeRawBufferPointer, stream id: Int32) {
        // The stream's user data is the stream (set with its response;
        // the table keeps it alive until nghttp2 reports the stream closed).
        if let me = s.userData(stream: id) {
            Unmanaged<HTTP2Stream>.fromOpaque(me)._withUnsafeGuaranteedRef { $0.received(data) }
        } else {
            // A request body nobody reads (admin routes): given back at once.
            session.consume(stream: id, bytes: data.count)
        }
    }

    func http2(_ s: HTTP2Session, endOfStream id: Int32) {
        streams[id]?.peerEnded()
    }

    func http2(_ s: HTTP2Session, closed id: Int32, errorCode: UInt32) {
        guard let st = streams.removeValue(forKey: id) else { return }
        forget(st, errorCode: errorCode)
    }

    private func forget(_ st: HTTP2Stream, errorCode: UInt32) {
        switch st {
        case is HTTP2WebSocketStream: context.transports.closed(.wsOverH2)
        case is GRPCStream: context.transports.closed(.grpc)
        default: context.transports.closed(.h2Request)
        }
        st.closedByPeerOrUs(errorCode: errorCode)
    }

    func http2PingAcknowledged(_ s: HTTP2Session) {
        lastHeard = loop.now()
    }

    // MARK: Liveness and drain

    func checkLiveness(now: UInt64, interval: UInt64) {
        if now &- lastHeard >= 2 * interval {
            context.logger.info("http2 connection closed", metadata: ["reason": "no answer to PING", "transport": "\(kind.name)"])
            connection.close()
            return
        }
        session.ping()
        scheduleSend()
    }

    /// Drain: GOAWAY naming the last stream taken, then each stream is
    /// closed its own way; the connection ends when they are done.
    func close(code: UInt16, reason: String) {
        guard !draining else { return }
        draining = true
        session.goAway(code: .noError)
        for (_, st) in streams { st.close(code: code, reason: reason) }
        scheduleSend()
    }
}
