import Glibc
import Reactor
import Framing
import TLS

/// What the router decided for one request head.
enum RouteDecision {
    /// Send these bytes (a complete response) and close.
    case respond([UInt8])
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
    /// Head bytes received so far when a head spans reads (bounded by the
    /// parser's 16 KiB limit); empty in the common one-read case.
    private var pending: [UInt8] = []
    private var deadline: LoopTimer?
    private let handshakeTimeout: UInt64
    private let metrics: RelayMetrics
    private let acceptedAt: UInt64

    /// The deadline covers the TLS handshake too: from accept to a complete
    /// head. A TLS connection still handshaking at the deadline is counted
    /// in `tlsCounters` as failed ("timeout") and closed without a word.
    init(connection: TCPConnection, handshakeTimeout: UInt64, webSocketSettings: WebSocketSettings,
         liveness: [LivenessMonitor], metrics: RelayMetrics, tlsCounters: TLSCounters? = nil,
         route: @escaping (HTTPRequestHead, TCPConnection) -> RouteDecision) {
        self.connection = connection
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

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        if pending.isEmpty {
            handle(bytes.bytes, slice: bytes)
        } else {
            pending.append(contentsOf: bytes.bytes)
            let copy = Slab.copying(pending)
            defer { copy.release() }
            handle(copy.written.bytes, slice: copy.written)
        }
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
                respond(response)
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
        if target === connection.loop {
            Self.finishUpgrade(connection, accept: accept, settings: settings, liveness: liveness[connection.loop.index],
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
                return
            }
            let copy = Slab.copying(leftover)
            defer { copy.release() }
            Self.finishUpgrade(moved, accept: accept, settings: wsSettings, liveness: monitor,
                               endpoint: makeEndpoint(), rest: copy.written)
        }
        if !posted { transport.close() }
    }

    /// Sends the 101 response and installs the WebSocket on `connection`'s loop.
    static func finishUpgrade(_ connection: TCPConnection, accept: String, settings: WebSocketSettings,
                              liveness: LivenessMonitor, endpoint: any MessageStreamEndpoint, rest: SlabSlice) {
        connection.enqueue(copying: WebSocketHandshake.response(acceptValue: accept))
        let ws = WebSocketConnection(connection: connection, settings: settings, liveness: liveness)
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
    }
}
