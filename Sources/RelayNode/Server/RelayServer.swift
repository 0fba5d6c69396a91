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
    /// One per loop: the gRPC encoding of the pod frames being fanned out.
    let grpcEncodings: [GRPCEncodingCache]
    /// One per loop: permessage-deflate (empty when compression is off).
    let deflate: [DeflateEncodingCache]
    let compression = CompressionCounters()

    let webPage: WebPage
    let metrics = RelayMetrics()
    /// TLS on the listener (nil: plain TCP).
    let tls: TLSService?
    /// Connections and streams by transport (h1, h2c, h2; ws, ws-over-h2, grpc).
    let transports = TransportCounters()

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
        grpcEncodings = self.loops.map { _ in GRPCEncodingCache() }
        let compression = self.compression
        deflate = settings.compression == "off" ? [] : self.loops.map { _ in
            // Room for a replay ring's compressed frames and the arena chunks
            // they pin (at least 3 MiB per loop, counted as allocated).
            DeflateEncodingCache(minimumSize: settings.compressionMinSize, counters: compression,
                                 keptBytes: 3 * max(settings.pod.replayRingBytes, 1 << 20))
        }
        tls = try settings.tls.map { try TLSService(settings: $0) }
    }

    /// Serves a new connection on its loop (the listener calls this for
    /// every accepted socket; tests hand in in-memory connections).
    func accept(_ connection: TCPConnection) {
        connection.handler = HTTPServerConnection(
            connection: connection, handshakeTimeout: settings.handshakeTimeout,
            webSocketSettings: WebSocketSettings(maxMessageSize: settings.maxMessageSize),
            liveness: liveness, metrics: metrics, tlsCounters: tls?.counters, transports: transports, deflate: deflate,
            startHTTP2: settings.http2 == nil ? nil : { [unowned self] connection, kind in startHTTP2(connection, kind: kind) },
            route: { [unowned self] head, connection in route(head, on: connection.loop, peerSubject: { connection.transport.summary.peerSubject }) })
    }

    /// Takes over `connection` as HTTP/2 (the sniffer saw the preface, or ALPN chose h2).
    private func startHTTP2(_ connection: TCPConnection, kind: TransportCounters.Connection) -> HTTP2ServerConnection {
        let loop = connection.loop
        let subject: () -> String? = { [unowned connection] in connection.transport.summary.peerSubject }
        let context = HTTP2Context(
            settings: settings.http2!, streamOutboundLimit: settings.outboundQueueBytes, closeTimeout: settings.closeTimeout,
            liveness: liveness[loop.index], grpcEncodings: grpcEncodings[loop.index],
            deflate: deflate.isEmpty ? nil : deflate[loop.index], transports: transports, logger: logger,
            route: { [unowned self] head, webSocket in routeHTTP2(head, webSocket: webSocket, on: loop, peerSubject: subject) },
            routeGRPC: { [unowned self] head in routeGRPC(head, on: loop, peerSubject: subject) })
        return HTTP2ServerConnection(connection: connection, kind: kind, context: context)
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

    // The probes' answers, made once (probes come often, over HTTP/2 many at once).
    static let healthOK = HTTPReply.text(200, #"{"status":"ok"}"#, contentType: "application/json")
    static let healthDraining = HTTPReply.text(503, #"{"status":"draining"}"#, contentType: "application/json")
    static let ready = HTTPReply.text(200, "ready\n")
    static let notReady = HTTPReply.text(503, "draining\n")

    /// Strips the `/relay` prefix that deployments without prefix stripping keep.
    static func relayPath(_ path: String) -> String {
        path.hasPrefix("/relay/") ? String(path.dropFirst(6)) : path
    }

    /// `loop`: the loop of the connection that sent `head`; `peerSubject`:
    /// its client certificate's subject (asked only when needed).
    func route(_ head: HTTPRequestHead, on loop: EventLoop, peerSubject: () -> String? = { nil }, multiplexed: Bool = false) -> RouteDecision {
        let path = Self.relayPath(head.path)
        switch path {
        case "/health":
            return .respond(draining.isSet ? Self.healthDraining : Self.healthOK)
        case "/stats":
            return .respond(.text(200, AdminReport.stats(hubs, tls: tls?.counters, transports: transports, compression: compression), contentType: "application/json"))
        case "/ready":
            return .respond(draining.isSet ? Self.notReady : Self.ready)
        case "/metrics":
            return .respond(.text(200, metrics.render(hubs, loops: loops, tls: tls?.counters, transports: transports, compression: compression),
                                                contentType: "text/plain; version=0.0.4; charset=utf-8"))
        case "/runner/relay":
            if let tls, !tls.settings.runnerAllowed(subject: peerSubject()) {
                logger.info("upgrade refused", metadata: ["role": "runner", "reason": "client certificate subject does not match tls-runner-subject"])
                return .respond(.text(403, "client certificate not allowed for runners\n"))
            }
            return podUpgrade(head, role: .runner, from: loop, multiplexed: multiplexed)
        case "/browser/relay":
            return podUpgrade(head, role: .browser, from: loop, multiplexed: multiplexed)
        case "/test/echo" where settings.echoEndpoint:
            return .upgrade(on: loop, maxMessageSize: EchoEndpoint.maxMessageSize, makeEndpoint: { EchoEndpoint() })
        default:
            if let page = webPage.response(for: head.path) { return .respond(page) }
            return .respond(.text(404, "not found\n"))
        }
    }

    /// Authenticates a runner or browser upgrade and sends it to its pod's loop.
    /// `multiplexed`: the stream cannot move (it shares an HTTP/2
    /// connection): its endpoint lives on `loop` (see `podEndpoint`).
    private func podUpgrade(_ head: HTTPRequestHead, role: PodRole, from loop: EventLoop, multiplexed: Bool = false) -> RouteDecision {
        if draining.isSet {
            return .respond(.text(503, "relay shutting down\n"))
        }
        if !settings.allowedOrigins.isEmpty, let origin = head.headers["origin"],
           !settings.allowedOrigins.contains(origin) {
            return .respond(.text(403, "origin not allowed\n"))
        }
        let identity: Identity
        switch authenticate(head, role: role) {
        case .failure(let e): return .respond(.text(401, e.reason + "\n"))
        case .success(let id): identity = id
        }
        let ext = head.queryValue("ext") == "1"
        var resume: (epoch: UInt32, seq: UInt64)? = nil
        if ext, let e = head.queryValue("epoch").flatMap({ UInt32($0) }), let s = head.queryValue("seq").flatMap({ UInt64($0) }) {
            resume = (e, s)
        }
        if multiplexed {
            return .upgrade(on: loop, maxMessageSize: settings.maxMessageSize,
                            makeEndpoint: podEndpoint(identity, ext: ext, resume: resume, on: loop))
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

    /// Verifies the token for `role` (nil: the role the claims say); every
    /// refusal is counted and logged.
    private func authenticate(_ head: HTTPRequestHead, role: PodRole?) -> Result<Identity, HTTPHeadError> {
        let result = authenticator.authenticate(head, endpoint: role)
        if case .failure(let e) = result {
            hubs[0].counters.authFailures.add(1, ordering: .relaxed)
            logger.info("upgrade refused", metadata: ["role": "\(role?.rawValue ?? "any")", "reason": "\(e.reason)"])
        }
        return result
    }

    /// The endpoint of a pod stream that stays on `loop` (a stream of an
    /// HTTP/2 connection): a browser joins the pod there, or the pod's
    /// mirror on that loop; a runner is the pod's runner directly when
    /// `loop` is the pod's home, else through a `RunnerBridge` to the home.
    private func podEndpoint(_ identity: Identity, ext: Bool, resume: (epoch: UInt32, seq: UInt64)?,
                             on loop: EventLoop) -> @Sendable () -> any MessageStreamEndpoint {
        let home = hubs[Int(PodHub.hash(identity.podKey) % UInt64(hubs.count))]
        let local = hubs[loop.index]
        let limit = settings.outboundQueueBytes
        return {
            switch identity.role {
            case .runner:
                if home === local { return RunnerSession(pod: home.pod(identity.podKey), ext: ext) }
                return RunnerBridge(home: home, podKey: identity.podKey, ext: ext, limit: limit)
            case .browser:
                return BrowserSession(pod: local.host(for: identity.podKey, home: home), identity: identity, ext: ext, resume: resume)
            }
        }
    }

    // MARK: HTTP/2

    /// The name of the one gRPC method (proto/relay/v1/relay.proto).
    static let attachMethod = "/relay.v1.Relay/Attach"

    /// A stream of an HTTP/2 connection on `loop`: a plain request, or an
    /// extended CONNECT for a WebSocket (`webSocket`).
    func routeHTTP2(_ head: HTTPRequestHead, webSocket: Bool, on loop: EventLoop, peerSubject: () -> String?) -> StreamRoute {
        switch route(head, on: loop, peerSubject: peerSubject, multiplexed: true) {
        case .respond(let reply):
            return .respond(reply)
        case .upgrade(_, let maxMessageSize, let makeEndpoint):
            guard webSocket else { return .respond(.text(400, "use an extended CONNECT (RFC 8441) for a WebSocket over HTTP/2\n")) }
            return .open(maxMessageSize: maxMessageSize, makeEndpoint: makeEndpoint)
        }
    }

    /// A gRPC call: the role comes from the token's claims; ext and resume
    /// from the metadata `x-relay-ext`, `x-relay-epoch`, `x-relay-seq`.
    func routeGRPC(_ head: HTTPRequestHead, on loop: EventLoop, peerSubject: () -> String?) -> StreamRoute {
        let path = Self.relayPath(head.path)
        guard path == Self.attachMethod else { return .refuse(.unimplemented, "unknown method \(path)") }
        if draining.isSet { return .refuse(.unavailable, "relay shutting down") }
        let identity: Identity
        switch authenticate(head, role: nil) {
        case .failure(let e): return .refuse(.unauthenticated, e.reason)
        case .success(let id): identity = id
        }
        if identity.role == .runner, let tls, !tls.settings.runnerAllowed(subject: peerSubject()) {
            logger.info("upgrade refused", metadata: ["role": "runner", "reason": "client certificate subject does not match tls-runner-subject"])
            return .refuse(.permissionDenied, "client certificate not allowed for runners")
        }
        let ext = head.headers["x-relay-ext"] == "1"
        var resume: (epoch: UInt32, seq: UInt64)? = nil
        if ext, let e = head.headers["x-relay-epoch"].flatMap({ UInt32($0) }), let s = head.headers["x-relay-seq"].flatMap({ UInt64($0) }) {
            resume = (e, s)
        }
        return .open(maxMessageSize: settings.maxMessageSize, makeEndpoint: podEndpoint(identity, ext: ext, resume: resume, on: loop))
    }
}
