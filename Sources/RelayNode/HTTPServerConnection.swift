import Reactor
import Framing

/// What the router decided for one request head.
enum RouteDecision {
    /// Send these bytes (a complete response) and close.
    case respond([UInt8])
    /// Upgrade to WebSocket with this endpoint and message limit.
    case upgrade(any WebSocketEndpoint, maxMessageSize: Int, extraHeaders: [(String, String)])
}

/// A new connection until its request head is complete: enforces the
/// handshake deadline and the head size limit, then answers (admin routes)
/// or upgrades to a WebSocket and hands over the bytes that followed the head.
final class HTTPServerConnection: ConnectionHandler {
    unowned let connection: TCPConnection
    private let route: (HTTPRequestHead) -> RouteDecision
    private let webSocketSettings: WebSocketSettings
    /// Head bytes received so far when a head spans reads (bounded by the
    /// parser's 16 KiB limit); empty in the common one-read case.
    private var pending: [UInt8] = []
    private var deadline: LoopTimer?

    init(connection: TCPConnection, handshakeTimeout: UInt64, webSocketSettings: WebSocketSettings,
         route: @escaping (HTTPRequestHead) -> RouteDecision) {
        self.connection = connection
        self.route = route
        self.webSocketSettings = webSocketSettings
        deadline = connection.loop.schedule(afterNanoseconds: handshakeTimeout) { [unowned connection] in
            // Slow-loris defence: no complete head in time.
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
            switch route(head) {
            case .respond(let response):
                respond(response)
            case .upgrade(let endpoint, let maxMessageSize, let extraHeaders):
                upgrade(head, endpoint: endpoint, maxMessageSize: maxMessageSize, extraHeaders: extraHeaders,
                        rest: slice.slice(from: headLength, count: slice.count - headLength))
            }
        }
    }

    private func upgrade(_ head: HTTPRequestHead, endpoint: any WebSocketEndpoint, maxMessageSize: Int,
                         extraHeaders: [(String, String)], rest: SlabSlice) {
        let accept: String
        switch WebSocketHandshake.validate(head) {
        case .failure(let e):
            if e.status == 426 {
                respond(WebSocketHandshake.versionRequiredResponse())
            } else {
                respond(HTTPResponse.simple(status: e.status, body: e.reason + "\n"))
            }
            endpoint.webSocketClosed(nil, code: WebSocketCloseCode.abnormal)
            return
        case .success(let value):
            accept = value
        }
        connection.enqueue(copying: WebSocketHandshake.response(acceptValue: accept, extraHeaders: extraHeaders))
        var settings = webSocketSettings
        settings.maxMessageSize = maxMessageSize
        let ws = WebSocketConnection(connection: connection, settings: settings)
        ws.endpoint = endpoint
        connection.handler = ws
        endpoint.webSocketOpened(ws)
        if rest.count > 0 && ws.isOpen { ws.feed(rest) }
    }

    private func respond(_ bytes: [UInt8]) {
        deadline?.cancel()
        deadline = nil
        connection.enqueue(copying: bytes)
        connection.close(afterFlush: true)
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        deadline?.cancel()
    }
}
