import Glibc
import Logging
import Reactor
import Framing
import TLS

/// The composition root: loops, listeners, routes and the admin endpoints.
final class RelayServer: @unchecked Sendable {
    let settings: RelaySettings
    let logger: Logger
    /// The threads, when this server runs its own (nil when it was given
    /// loops, e.g. an `EmbeddedEventLoop`'s in tests).
    let group: EventLoopGroup?
    let loops: [EventLoop]
    private(set) var port = 0
    /// Set when the relay stops taking new work (SIGTERM): /health answers 503.
    private let draining = AtomicFlag()
    /// One per loop, index-aligned with `group.loops`.
    let hubs: [PodHub]
    let authenticator: TokenAuthenticator
    /// One per loop: pings and half-open detection for its WebSockets.
    let liveness: [LivenessMonitor]

    let webPage: WebPage
    let metrics = RelayMetrics()
    /// TLS on the listener (nil: plain TCP).
    let tls: TLSService?

    /// A server on `loops`, or on a group of `settings.loops` threads of its own.
    init(settings: RelaySettings, logger: Logger, webPage: WebPage, loops: [EventLoop]? = nil) throws {
        self.settings = settings
        self.webPage = webPage
        self.logger = logger
        if let loops {
            group = nil
            self.loops = loops
        } else {
            let group = try EventLoopGroup(loopCount: settings.loops)
            self.group = group
            self.loops = group.loops
        }
        let pods = settings.pod
        hubs = self.loops.map { PodHub(loop: $0, settings: pods, counters: RelayCounters(), logger: logger) }
        authenticator = TokenAuthenticator(secrets: settings.jwtSecrets, issuer: settings.jwtIssuer)
        liveness = self.loops.map { LivenessMonitor(loop: $0, interval: settings.pingInterval, closeTimeout: settings.closeTimeout) }
        tls = try settings.tls.map { try TLSService(settings: $0) }
    }

    /// Serves a new connection on its loop (the listener calls this for
    /// every accepted socket; tests hand in in-memory connections).
    func accept(_ connection: TCPConnection) {
        connection.handler = HTTPServerConnection(
            connection: connection, handshakeTimeout: settings.handshakeTimeout,
            webSocketSettings: WebSocketSettings(maxMessageSize: settings.maxMessageSize),
            liveness: liveness, metrics: metrics, tlsCounters: tls?.counters,
            route: { [unowned self] head, connection in route(head, on: connection.loop, peerSubject: { connection.transport.summary.peerSubject }) })
    }

    /// Binds the port (one listener per loop), hooks signals, starts the loops.
    /// `handlingSignals`: SIGINT/SIGTERM drain and stop the relay (a process
    /// does; a test that runs a server in its own process does not).
    func start(handlingSignals: Bool = true) throws {
        guard let group else { preconditionFailure("start() needs the server's own loop threads") }
        let address = try SocketAddress(host: settings.host, port: settings.port)
        let transport: @Sendable (Int32) throws -> any Transport
        if let tls {
            transport = { fd in try tls.transport(fd: fd) }
        } else {
            transport = { fd in PlainTransport(fd: fd) }
        }
        port = try group.listen(on: address, outboundLimit: settings.outboundQueueBytes, transport: transport) { [unowned self] connection in
            accept(connection)
        }
        if handlingSignals {
            try loops[0].handleSignals { [unowned self] signo in
                if signo == SIGHUP {
                    reload()
                } else {
                    beginShutdown(signal: signo)
                }
            }
        }
        group.start()
        logger.notice("relay listening", metadata: [
            "address": "\(address.family == AF_INET6 ? "[\(settings.host)]" : settings.host):\(port)",
            "loops": "\(settings.loops)", "relay_id": "\(settings.relayID)",
            "tls": "\(tls == nil ? "off" : settings.tls!.clientCAFile == nil ? "on" : "on, client certificates required")",
        ])
    }

    /// SIGHUP: re-reads what can change without a restart (the TLS files).
    func reload() {
        if let tls {
            tls.reload(logger: logger)
        } else {
            logger.notice("SIGHUP: nothing to reload (TLS is off)")
        }
    }

    /// First signal: drain — /health answers 503, new upgrades are refused,
    /// every WebSocket gets Close 1001, and the loops stop after the grace
    /// period. A second signal stops at once. Runs on loop 0.
    func beginShutdown(signal signo: Int32) {
        if draining.isSet {
            logger.notice("second signal, stopping now", metadata: ["signal": "\(signo)"])
            stopLoops()
            return
        }
        draining.set()
        logger.notice("signal received, draining", metadata: ["signal": "\(signo)", "grace": "\(GoDuration.format(settings.shutdownGrace))"])
        for (loop, monitor) in zip(loops, liveness) {
            loop.execute { monitor.closeAll(code: WebSocketCloseCode.goingAway, reason: "relay shutting down") }
        }
        loops[0].schedule(afterNanoseconds: settings.shutdownGrace) { [unowned self] in stopLoops() }
    }

    /// Any thread: stops every loop (each closes what it owns).
    func stop() { stopLoops() }

    private func stopLoops() {
        for loop in loops { loop.stop() }
    }

    /// Blocks until the loops have stopped.
    func wait() { group?.join() }

    // MARK: Routing (runs on the connection's loop)

    /// Strips the `/relay` prefix that deployments without prefix stripping keep.
    static func relayPath(_ path: String) -> String {
        path.hasPrefix("/relay/") ? String(path.dropFirst(6)) : path
    }

    /// `loop`: the loop of the connection that sent `head`; `peerSubject`:
    /// its client certificate's subject (asked only when needed).
    func route(_ head: HTTPRequestHead, on loop: EventLoop, peerSubject: () -> String? = { nil }) -> RouteDecision {
        let path = Self.relayPath(head.path)
        switch path {
        case "/health":
            return draining.isSet
                ? .respond(HTTPResponse.simple(status: 503, body: #"{"status":"draining"}"#, contentType: "application/json"))
                : .respond(HTTPResponse.simple(status: 200, body: #"{"status":"ok"}"#, contentType: "application/json"))
        case "/stats":
            return .respond(HTTPResponse.simple(status: 200, body: AdminReport.stats(hubs, tls: tls?.counters), contentType: "application/json"))
        case "/ready":
            return draining.isSet
                ? .respond(HTTPResponse.simple(status: 503, body: "draining\n"))
                : .respond(HTTPResponse.simple(status: 200, body: "ready\n"))
        case "/metrics":
            return .respond(HTTPResponse.simple(status: 200, body: metrics.render(hubs, loops: loops, tls: tls?.counters),
                                                contentType: "text/plain; version=0.0.4; charset=utf-8"))
        case "/runner/relay":
            if let tls, !tls.settings.runnerAllowed(subject: peerSubject()) {
                logger.info("upgrade refused", metadata: ["role": "runner", "reason": "client certificate subject does not match tls-runner-subject"])
                return .respond(HTTPResponse.simple(status: 403, body: "client certificate not allowed for runners\n"))
            }
            return podUpgrade(head, role: .runner, from: loop)
        case "/browser/relay":
            return podUpgrade(head, role: .browser, from: loop)
        case "/test/echo" where settings.echoEndpoint:
            return .upgrade(on: loop, maxMessageSize: EchoEndpoint.maxMessageSize, makeEndpoint: { EchoEndpoint() })
        default:
            if let page = webPage.response(for: head.path) { return .respond(page) }
            return .respond(HTTPResponse.simple(status: 404, body: "not found\n"))
        }
    }

    /// Authenticates a runner or browser upgrade and sends it to its pod's loop.
    private func podUpgrade(_ head: HTTPRequestHead, role: PodRole, from loop: EventLoop) -> RouteDecision {
        if draining.isSet {
            return .respond(HTTPResponse.simple(status: 503, body: "relay shutting down\n"))
        }
        if !settings.allowedOrigins.isEmpty, let origin = head.headers["origin"],
           !settings.allowedOrigins.contains(origin) {
            return .respond(HTTPResponse.simple(status: 403, body: "origin not allowed\n"))
        }
        let identity: Identity
        switch authenticator.authenticate(head, endpoint: role) {
        case .failure(let e):
            hubs[0].counters.authFailures.add(1, ordering: .relaxed)
            logger.info("upgrade refused", metadata: ["role": "\(role.rawValue)", "reason": "\(e.reason)"])
            return .respond(HTTPResponse.simple(status: 401, body: e.reason + "\n"))
        case .success(let id):
            identity = id
        }
        let ext = head.queryValue("ext") == "1"
        var resume: (epoch: UInt32, seq: UInt64)? = nil
        if ext, let e = head.queryValue("epoch").flatMap({ UInt32($0) }), let s = head.queryValue("seq").flatMap({ UInt64($0) }) {
            resume = (e, s)
        }
        let home = hubs[Int(PodHub.hash(identity.podKey) % UInt64(hubs.count))]
        let resumePoint = resume
        // A runner always moves to its pod's loop; a browser too, unless
        // placement says it stays where it was accepted (then it joins that
        // loop's mirror of the pod).
        let hub = role == .browser && settings.browserPlacement == "accept"
            ? hubs[loop.index] : home
        return .upgrade(on: hub.loop, maxMessageSize: settings.maxMessageSize, makeEndpoint: {
            switch role {
            case .runner: return RunnerSession(pod: home.pod(identity.podKey), ext: ext)
            case .browser: return BrowserSession(pod: hub.host(for: identity.podKey, home: home), identity: identity, ext: ext, resume: resumePoint)
            }
        })
    }
}
