import Glibc
import Logging
import Reactor
import Framing

/// The composition root: loops, listeners, routes and the admin endpoints.
final class RelayServer: @unchecked Sendable {
    let settings: RelaySettings
    let logger: Logger
    let group: EventLoopGroup
    private(set) var port = 0
    /// Set when the relay stops taking new work (SIGTERM): /health answers 503.
    private let draining = AtomicFlag()

    init(settings: RelaySettings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        group = try EventLoopGroup(loopCount: settings.loops)
    }

    /// Binds the port (one listener per loop), hooks signals, starts the loops.
    func start() throws {
        let address = try SocketAddress(host: settings.host, port: settings.port)
        let wsSettings = WebSocketSettings(maxMessageSize: settings.maxMessageSize, pingInterval: settings.pingInterval)
        let handshakeTimeout = settings.handshakeTimeout
        port = try group.listen(on: address, outboundLimit: settings.outboundQueueBytes) { [unowned self] connection in
            connection.handler = HTTPServerConnection(
                connection: connection, handshakeTimeout: handshakeTimeout, webSocketSettings: wsSettings,
                route: { [unowned self] head in route(head) })
        }
        try group.loops[0].handleSignals { [unowned self] signo in
            logger.notice("signal received, stopping", metadata: ["signal": "\(signo)"])
            draining.set()
            group.stop()
        }
        group.start()
        logger.notice("relay listening", metadata: [
            "address": "\(address.family == AF_INET6 ? "[\(settings.host)]" : settings.host):\(port)",
            "loops": "\(settings.loops)", "relay_id": "\(settings.relayID)",
        ])
    }

    /// Blocks until the loops have stopped.
    func wait() { group.join() }

    // MARK: Routing (runs on the connection's loop)

    /// Strips the `/relay` prefix that deployments without prefix stripping keep.
    static func relayPath(_ path: String) -> String {
        path.hasPrefix("/relay/") ? String(path.dropFirst(6)) : path
    }

    func route(_ head: HTTPRequestHead) -> RouteDecision {
        let path = Self.relayPath(head.path)
        switch path {
        case "/health":
            return draining.isSet
                ? .respond(HTTPResponse.simple(status: 503, body: #"{"status":"draining"}"#, contentType: "application/json"))
                : .respond(HTTPResponse.simple(status: 200, body: #"{"status":"ok"}"#, contentType: "application/json"))
        case "/test/echo" where settings.echoEndpoint:
            return .upgrade(EchoEndpoint(), maxMessageSize: EchoEndpoint.maxMessageSize, extraHeaders: [])
        default:
            return .respond(HTTPResponse.simple(status: 404, body: "not found\n"))
        }
    }
}
