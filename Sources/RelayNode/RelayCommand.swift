import ArgumentParser
import Glibc
import Logging
import Reactor

@main
struct RelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "A relay for terminal I/O between AI-agent runners and browsers (AgentsMesh-compatible).",
        discussion: "`relay [options]` serves (see `relay serve --help` for every setting); `relay attach` runs a command as a pod's runner.",
        subcommands: [ServeCommand.self, AttachCommand.self],
        defaultSubcommand: ServeCommand.self)
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the relay (the default command).",
        discussion: """
        Settings come from flags, then the environment (each name also with a RELAY_ prefix), \
        then the YAML file given with --config, then the defaults. Durations are Go-style (10s, 500ms, 1m).
        """)

    @Option(help: "YAML file of settings (keys as the flag names, e.g. `port: 8090`).") var config: String?
    @Option(help: "\(RelaySettings.Spec.host.help) [SERVER_HOST]") var host: String?
    @Option(help: "\(RelaySettings.Spec.port.help) [SERVER_PORT]") var port: String?
    @Option(help: "\(RelaySettings.Spec.loops.help) [LOOPS]") var loops: String?
    @Flag(help: "\(RelaySettings.Spec.dev.help) [DEV_MODE]") var dev = false
    @Flag(name: .customLong("echo-endpoint"), help: "\(RelaySettings.Spec.echo.help) [ECHO_ENDPOINT]") var echoEndpoint = false
    @Option(name: .customLong("web-root"), help: "\(RelaySettings.Spec.webRoot.help) [WEB_ROOT]") var webRoot: String?
    @Option(name: .customLong("log-format"), help: "\(RelaySettings.Spec.logFormat.help) [LOG_FORMAT]") var logFormat: String?
    @Option(name: .customLong("log-level"), help: "\(RelaySettings.Spec.logLevel.help) [LOG_LEVEL]") var logLevel: String?
    @Option(name: .customLong("jwt-secret"), help: "\(RelaySettings.Spec.jwtSecret.help) [JWT_SECRET]") var jwtSecret: String?
    @Option(name: .customLong("jwt-previous-secrets"), help: "\(RelaySettings.Spec.jwtPrevious.help) [JWT_PREVIOUS_SECRETS]") var jwtPreviousSecrets: String?
    @Option(name: .customLong("jwt-issuer"), help: "\(RelaySettings.Spec.jwtIssuer.help) [JWT_ISSUER]") var jwtIssuer: String?
    @Option(name: .customLong("keep-alive-duration"), help: "\(RelaySettings.Spec.keepAlive.help) [KEEP_ALIVE_DURATION]") var keepAliveDuration: String?
    @Option(name: .customLong("max-browsers-per-pod"), help: "\(RelaySettings.Spec.maxBrowsers.help) [MAX_BROWSERS_PER_POD]") var maxBrowsersPerPod: String?
    @Option(name: .customLong("runner-reconnect-timeout"), help: "\(RelaySettings.Spec.runnerReconnect.help) [RUNNER_RECONNECT_TIMEOUT]") var runnerReconnectTimeout: String?
    @Option(name: .customLong("pending-connection-timeout"), help: "\(RelaySettings.Spec.pending.help) [PENDING_CONNECTION_TIMEOUT]") var pendingConnectionTimeout: String?
    @Option(name: .customLong("relay-id"), help: "\(RelaySettings.Spec.relayID.help) [RELAY_ID]") var relayID: String?
    @Option(name: .customLong("ping-interval"), help: "\(RelaySettings.Spec.ping.help) [PING_INTERVAL]") var pingInterval: String?
    @Option(name: .customLong("handshake-timeout"), help: "\(RelaySettings.Spec.handshake.help) [HANDSHAKE_TIMEOUT]") var handshakeTimeout: String?
    @Option(name: .customLong("max-message-size"), help: "\(RelaySettings.Spec.maxMessage.help) [MAX_MESSAGE_SIZE]") var maxMessageSize: String?
    @Option(name: .customLong("outbound-queue-bytes"), help: "\(RelaySettings.Spec.outbound.help) [OUTBOUND_QUEUE_BYTES]") var outboundQueueBytes: String?
    @Option(name: .customLong("replay-ring-bytes"), help: "\(RelaySettings.Spec.replay.help) [REPLAY_RING_BYTES]") var replayRingBytes: String?
    @Option(name: .customLong("allowed-origins"), help: "\(RelaySettings.Spec.origins.help) [ALLOWED_ORIGINS]") var allowedOrigins: String?
    @Option(name: .customLong("shutdown-grace"), help: "\(RelaySettings.Spec.grace.help) [SHUTDOWN_GRACE]") var shutdownGrace: String?

    /// The flags given, keyed like the settings table.
    var flagValues: [String: String] {
        var f: [String: String] = [:]
        let pairs: [(String, String?)] = [
            ("host", host), ("port", port), ("loops", loops), ("web-root", webRoot), ("log-format", logFormat),
            ("log-level", logLevel), ("jwt-secret", jwtSecret), ("jwt-previous-secrets", jwtPreviousSecrets),
            ("jwt-issuer", jwtIssuer), ("keep-alive-duration", keepAliveDuration),
            ("max-browsers-per-pod", maxBrowsersPerPod), ("runner-reconnect-timeout", runnerReconnectTimeout),
            ("pending-connection-timeout", pendingConnectionTimeout), ("relay-id", relayID),
            ("ping-interval", pingInterval), ("handshake-timeout", handshakeTimeout),
            ("max-message-size", maxMessageSize), ("outbound-queue-bytes", outboundQueueBytes),
            ("replay-ring-bytes", replayRingBytes), ("allowed-origins", allowedOrigins),
            ("shutdown-grace", shutdownGrace),
        ]
        for (k, v) in pairs { if let v { f[k] = v } }
        if dev { f["dev"] = "true" }
        if echoEndpoint { f["echo-endpoint"] = "true" }
        return f
    }

    func run() throws {
        var settings: RelaySettings
        do {
            var sources = SettingSources(flags: flagValues, environment: Self.environment())
            if let config {
                sources.file = try ConfigFile.load(path: config)
                sources.fileName = config
            }
            settings = try RelaySettings.resolve(sources, hostname: Self.hostname())
        } catch {
            Self.fail("\(error)")
        }
        let format: LineLogHandler.Format = settings.logFormat == "json" ? .json : .logfmt
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, logLevel: level) }
        let logger = Logger(label: "relay")
        var dev: DevMode? = nil
        if settings.dev {
            dev = DevMode(settings: settings)
            settings = dev!.settings
        }
        let server: RelayServer
        do {
            server = try RelayServer(settings: settings, logger: logger, webPage: WebPage.load(root: settings.webRoot, enabled: settings.dev || settings.webRoot != nil, logger: logger))
            try server.start()
            try dev?.start(port: server.port, logger: logger)
        } catch {
            Self.fail("\(error)")
        }
        server.wait()
        dev?.stop()
        logger.notice("relay stopped")
    }

    static func fail(_ message: String) -> Never {
        var line = Array("relay: error: \(message)\n".utf8)
        _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        Glibc.exit(1)
    }

    static func environment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }

    static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
