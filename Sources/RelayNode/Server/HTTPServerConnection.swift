import Glibc
import Reactor
import Framing
import TLS

/// What the router decided for one request head.
enum RouteDecision {
    /// Send this response and close (HTTP/1.1), or end the stream (HTTP/2).
    case respond(HTTPReply)
    /// Upgrade to WebSocket on `loop` (the connection moves there first if
    /// it was accepted elsewhere); `makeEndpoint` runs on that loop.
    case upgrade(on: EventLoop, maxMessageSize: Int, makeEndpoint: @Sendable () -> any MessageStreamEndpoint)
}

/// A new connection until its request head is complete: enforces the
/// handshake deadline and the head size limit, then answers (admin routes)
/// or upgrades to a WebSocket and hands over the bytes that followed the head.
final class HTTPServerConnection: ConnectionHandler {
    unowned let connection: TCPConnection
    private let route: (HTTPRequestHead, TCPConnection) -> RouteDecision
    private let webSocketSettings: WebSocketSettings
    /// One per loop, indexed by loop index.
    private let liveness: [LivenessMonitor]
    /// permessage-deflate, one per loop (empty: compression off).
    private let deflate: [DeflateEncodingCache]
    /// Head bytes received so far when a head spans reads (bounded by the
    /// parser's 16 KiB limit); empty in the common one-read case.
    private var pending: [UInt8] = []
    private var deadline: LoopTimer?
    private let handshakeTimeout: UInt64
    private let metrics: RelayMetrics
    private let acceptedAt: UInt64
    /// Takes the connection over as HTTP/2 (nil: HTTP/2 is off).
    private let startHTTP2: ((TCPConnection, TransportCounters.Connection) -> HTTP2ServerConnection)?
    private let transports: TransportCounters

    /// The deadline covers the TLS handshake too: from accept to a complete
    /// head. A TLS connection still handshaking at the deadline is counted
    /// in `tlsCounters` as failed ("timeout") and closed without a word.
    init(connection: TCPConnection, handshakeTimeout: UInt64, webSocketSettings: WebSocketSettings,
         liveness: [LivenessMonitor], metrics: RelayMetrics, tlsCounters: TLSCounters? = nil,
         transports: TransportCounters, deflate: [DeflateEncodingCache] = [],
         startHTTP2: ((TCPConnection, TransportCounters.Connection) -> HTTP2ServerConnection)? = nil,
         route: @escaping (HTTPRequestHead, TCPConnection) -> RouteDecision) {
        self.connection = connection
        self.deflate = deflate
        self.startHTTP2 = startHTTP2
        self.transports = transports
        self.metrics = metrics
        acceptedAt = connection.loop.now()
        self.liveness = liveness
        self.handshakeTimeout = handshakeTimeout
        self.route = route
        self.webSocketSettings = webSocketSettings
        deadline = connection.loop.schedule(afterNanoseconds: handshakeTimeout) { [unowned connection] in
            // Slow-loris defence: no complete head in time.
            if !connection.isEstablished {
                tlsCounters?.handshakeFailed(reason: "timeout")
                connection.close()
                return
            }
            connection.enqueue(copying: HTTPResponse.simple(status: 408, body: "request timeout\n"))
            connection.close(afterFlush: true)
        }
    }

    /// Counted as an HTTP/1 connection from its first byte that is not
    /// HTTP/2's (a connection that sends nothing, or fails its TLS
    /// handshake, is neither).
    private var countedAsH1 = false

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        if startHTTP2 != nil, http2(c, bytes) { return }
        if !countedAsH1 {
            countedAsH1 = true
            transports.opened(.h1)
        }
        if pending.isEmpty {
            handle(bytes.bytes, slice: bytes)
        } else {
            pending.append(contentsOf: bytes.bytes)
            let copy = Slab.copying(pending)
            defer { copy.release() }
            handle(copy.written.bytes, slice: copy.written)
        }
    }

    /// The HTTP/2 client preface (RFC 9113 §3.4).
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Hands the connection to HTTP/2 when ALPN chose h2, or when its first
    /// bytes are the client preface (h2c with prior knowledge; no HTTP/1
    /// request starts with "PRI "). True when the bytes were taken.
    private func http2(_ c: TCPConnection, _ bytes: SlabSlice) -> Bool {
        let kind: TransportCounters.Connection
        if c.transport.summary.applicationProtocol == "h2" {
            kind = .h2
        } else {
            // Up to the preface's length, what came must match it.
            let seen = pending + Array(bytes.bytes.prefix(Self.preface.count - min(pending.count, Self.preface.count)))
            let n = min(seen.count, Self.preface.count)
            guard n > 0, seen[0..<n].elementsEqual(Self.preface[0..<n]) else { return false }
            if n < Self.preface.count {
                pending.append(contentsOf: bytes.bytes)
                return true
            }
            kind = .h2c
        }
        deadline?.cancel()
        deadline = nil
        let h2 = startHTTP2!(c, kind)
        c.handler = h2
        if pending.isEmpty {
            h2.receive(bytes.bytes)
        } else {
            let all = pending + Array(bytes.bytes)
            pending = []
            all.withUnsafeBytes { h2.receive($0) }
        }
        return true
    }

    private func handle(_ bytes: UnsafeRawBufferPointer, slice: SlabSlice) {
        switch HTTPRequestHeadParser.parse(bytes) {
        case .needMore:
            if pending.isEmpty { pending = Array(bytes) }
        case .failed(let e):
            respond(HTTPResponse.simple(status: e.status, body: e.reason + "\n"))
        case .complete(let head, let headLength):
            deadline?.cancel()
            deadline = nil
            metrics.handshake.recordNanoseconds(Int64(connection.loop.now() &- acceptedAt))
            switch route(head, connection) {
            case .respond(let response):
                respond(response.http1)
            case .upgrade(let loop, let maxMessageSize, let makeEndpoint):
                upgrade(head, on: loop, maxMessageSize: maxMessageSize, makeEndpoint: makeEndpoint,
                        rest: slice.slice(from: headLength, count: slice.count - headLength))
            }
        }
    }

    private func upgrade(_ head: HTTPRequestHead, on target: EventLoop, maxMessageSize: Int,
                         makeEndpoint: @escaping @Sendable () -> any MessageStreamEndpoint, rest: SlabSlice) {
        let accept: String
        switch WebSocketHandshake.validate(head) {
        case .failure(let e):
            respond(e.status == 426 ? WebSocketHandshake.versionRequiredResponse()
                                    : HTTPResponse.simple(status: e.status, body: e.reason + "\n"))
            return
        case .success(let value):
            accept = value
        }
        var settings = webSocketSettings
        settings.maxMessageSize = maxMessageSize
        // permessage-deflate when offered and on; an offer that cannot be
        // honoured only means no compression.
        let agreement = deflate.isEmpty ? nil : PerMessageDeflateNegotiation.negotiate(head.headers.values("sec-websocket-extensions"))
        settings.deflateResponse = agreement?.responseValue
        if target === connection.loop {
            Self.finishUpgrade(connection, accept: accept, settings: settings, liveness: liveness[connection.loop.index],
                               transports: transports, deflate: agreement == nil ? nil : deflate[connection.loop.index],
                               endpoint: makeEndpoint(), rest: rest)
            return
        }
        // The pod lives on another loop: hand the socket over once, before
        // its first WebSocket byte, so that all of a pod's connections share
        // one loop and pod state needs no locks.
        let leftover = Array(rest.bytes)
        moveThenFinish(to: target, accept: accept, settings: settings, makeEndpoint: makeEndpoint, leftover: leftover)
    }

    /// Set while a move waits for the transport's own output (TLS session
    /// tickets the socket has not taken yet) to leave.
    private var moveWhenDrained: (() -> Void)?

    private func moveThenFinish(to target: EventLoop, accept: String, settings wsSettings: WebSocketSettings,
                                makeEndpoint: @escaping @Sendable () -> any MessageStreamEndpoint, leftover: [UInt8]) {
        let limit = connection.outboundLimit
        let monitor = liveness[target.index]
        let transports = self.transports
        // The target loop's compressor (these objects live as long as the server).
        nonisolated(unsafe) let compressor = wsSettings.deflateResponse == nil ? nil : deflate[target.index]
        // Detached, the connection is no longer this handler's: the count
        // of HTTP/1 connections goes with the socket (the WebSocket ends it).
        guard let transport = connection.detach() else {
            guard connection.isOpen && connection.transport.hasPendingOutput else {
                connection.close()
                return
            }
            // A connection moves only with nothing in flight: wait for the
            // transport's bytes to leave, reading nothing more meanwhile.
            connection.pauseReading()
            moveWhenDrained = { [unowned self] in
                moveThenFinish(to: target, accept: accept, settings: wsSettings, makeEndpoint: makeEndpoint, leftover: leftover)
            }
            connection.notifyWhenDrained()
            return
        }
        // The transport is used by this thread until here and by the target
        // loop's from the job on: handed over, never shared.
        nonisolated(unsafe) let moving = transport
        let posted = target.execute {
            guard let moved = try? TCPConnection.adopt(transport: moving, on: target, outboundLimit: limit) else {
                moving.close()
                transports.closed(.h1)
                return
            }
            let copy = Slab.copying(leftover)
            defer { copy.release() }
            Self.finishUpgrade(moved, accept: accept, settings: wsSettings, liveness: monitor,
                               transports: transports, deflate: compressor, endpoint: makeEndpoint(), rest: copy.written)
        }
        if !posted {
            transport.close()
            transports.closed(.h1)
        }
    }

    /// Sends the 101 response and installs the WebSocket on `connection`'s loop.
    static func finishUpgrade(_ connection: TCPConnection, accept: String, settings: WebSocketSettings,
                              liveness: LivenessMonitor, transports: TransportCounters, deflate: DeflateEncodingCache?,
                              endpoint: any MessageStreamEndpoint, rest: SlabSlice) {
        let extensions = settings.deflateResponse.map { [("Sec-WebSocket-Extensions", $0)] } ?? []
        connection.enqueue(copying: WebSocketHandshake.response(acceptValue: accept, extraHeaders: extensions))
        let ws = WebSocketConnection(connection: connection, settings: settings, liveness: liveness, transports: transports,
                                     deflate: deflate)
        ws.endpoint = endpoint
        connection.handler = ws
        endpoint.streamOpened(ws)
        if rest.count > 0 && ws.isOpen { ws.feed(rest) }
    }

    private func respond(_ bytes: [UInt8]) {
        deadline?.cancel()
        // A client that never reads its response must not hold the
        // connection (and the response) forever: the same deadline again,
        // then a hard close.
        deadline = connection.loop.schedule(afterNanoseconds: handshakeTimeout) { [unowned connection] in connection.close() }
        connection.enqueue(copying: bytes)
        connection.close(afterFlush: true)
    }

    func connectionDrained(_ c: TCPConnection) {
        guard let move = moveWhenDrained else { return }
        moveWhenDrained = nil
        move()
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        deadline?.cancel()
        moveWhenDrained = nil
        if countedAsH1 { transports.closed(.h1) }
    }
}
