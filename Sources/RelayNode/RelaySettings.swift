import Reactor

/// Every setting of the relay, resolved and checked once at start-up.
struct RelaySettings: Sendable {
    var host = "0.0.0.0"
    var port = 8090
    var loops = EventLoopGroup.coreCount
    var dev = false
    var echoEndpoint = false
    var webRoot: String? = nil
    var logFormat = "logfmt"
    var logLevel = "info"

    var jwtSecrets: [[UInt8]] = []
    var jwtIssuer: String? = "agentsmesh-relay"
    var keepAliveDuration: UInt64 = 30_000_000_000
    var maxBrowsersPerPod = 10
    var runnerReconnectTimeout: UInt64 = 30_000_000_000
    var pendingConnectionTimeout: UInt64 = 60_000_000_000
    var relayID = "relay"
    var relayRegion = "default"
    var relayCapacity = 1000

    var pingInterval: UInt64 = 25_000_000_000
    var handshakeTimeout: UInt64 = 10_000_000_000
    var maxMessageSize = 4 << 20
    var outboundQueueBytes = 1 << 20
    var replayRingBytes = 1 << 20
    var heldInputBytes = 64 << 10
    var allowedOrigins: [String] = []
    var shutdownGrace: UInt64 = 2_000_000_000

    enum Spec {
        static let host = SettingSpec(key: "host", env: ["SERVER_HOST"], defaultValue: nil, help: "Address to listen on (default 0.0.0.0; 127.0.0.1 in dev mode)")
        static let port = SettingSpec(key: "port", env: ["SERVER_PORT"], defaultValue: "8090", help: "TCP port")
        static let loops = SettingSpec(key: "loops", env: ["LOOPS"], defaultValue: "\(EventLoopGroup.coreCount)", help: "Event loops (threads); default: one per core")
        static let dev = SettingSpec(key: "dev", env: ["DEV_MODE"], defaultValue: "false", help: "Dev mode: generated secret, demo pod, terminal page")
        static let echo = SettingSpec(key: "echo-endpoint", env: ["ECHO_ENDPOINT"], defaultValue: "false", help: "Serve the test-only echo WebSocket at /test/echo")
        static let webRoot = SettingSpec(key: "web-root", env: ["WEB_ROOT"], defaultValue: nil, help: "Directory with xterm.js assets for the terminal page")
        static let logFormat = SettingSpec(key: "log-format", env: ["LOG_FORMAT"], defaultValue: "logfmt", help: "logfmt or json")
        static let logLevel = SettingSpec(key: "log-level", env: ["LOG_LEVEL"], defaultValue: "info", help: "trace, debug, info, notice, warning, error")
        static let jwtSecret = SettingSpec(key: "jwt-secret", env: ["JWT_SECRET"], defaultValue: nil, help: "HMAC secret for tokens (required outside dev mode)")
        static let jwtPrevious = SettingSpec(key: "jwt-previous-secrets", env: ["JWT_PREVIOUS_SECRETS"], defaultValue: nil, help: "Comma-separated older secrets still accepted (rotation)")
        static let jwtIssuer = SettingSpec(key: "jwt-issuer", env: ["JWT_ISSUER"], defaultValue: "agentsmesh-relay", help: "Required iss claim (empty: no check)")
        static let keepAlive = SettingSpec(key: "keep-alive-duration", env: ["KEEP_ALIVE_DURATION"], defaultValue: "30s", help: "How long a pod outlives its last browser")
        static let maxBrowsers = SettingSpec(key: "max-browsers-per-pod", env: ["MAX_BROWSERS_PER_POD"], defaultValue: "10", help: "Browsers per pod; one more is closed with 1008")
        static let runnerReconnect = SettingSpec(key: "runner-reconnect-timeout", env: ["RUNNER_RECONNECT_TIMEOUT"], defaultValue: "30s", help: "How long browsers wait for a runner to return")
        static let pending = SettingSpec(key: "pending-connection-timeout", env: ["PENDING_CONNECTION_TIMEOUT"], defaultValue: "60s", help: "How long a connection waits for its counterpart")
        static let relayID = SettingSpec(key: "relay-id", env: ["RELAY_ID"], defaultValue: nil, help: "This node's id (default relay-<hostname>)")
        static let relayRegion = SettingSpec(key: "relay-region", env: ["RELAY_REGION"], defaultValue: "default", help: "Region label")
        static let relayCapacity = SettingSpec(key: "relay-capacity", env: ["RELAY_CAPACITY"], defaultValue: "1000", help: "Advertised capacity")
        static let heartbeat = SettingSpec(key: "heartbeat-interval", env: ["HEARTBEAT_INTERVAL"], defaultValue: "10s", help: "Backend heartbeat interval (accepted for compatibility)")
        static let ping = SettingSpec(key: "ping-interval", env: ["PING_INTERVAL"], defaultValue: "25s", help: "WebSocket ping interval; silent for 2 intervals = closed")
        static let handshake = SettingSpec(key: "handshake-timeout", env: ["HANDSHAKE_TIMEOUT"], defaultValue: "10s", help: "Time from accept to a complete request head")
        static let maxMessage = SettingSpec(key: "max-message-size", env: ["MAX_MESSAGE_SIZE"], defaultValue: "\(4 << 20)", help: "Largest WebSocket message in bytes (larger: close 1009)")
        static let outbound = SettingSpec(key: "outbound-queue-bytes", env: ["OUTBOUND_QUEUE_BYTES"], defaultValue: "\(1 << 20)", help: "Per-connection outbound queue bound in bytes")
        static let replay = SettingSpec(key: "replay-ring-bytes", env: ["REPLAY_RING_BYTES"], defaultValue: "\(1 << 20)", help: "Per-pod replay ring in bytes")
        static let origins = SettingSpec(key: "allowed-origins", env: ["ALLOWED_ORIGINS"], defaultValue: "", help: "Comma-separated Origin allow-list (empty: any)")
        static let grace = SettingSpec(key: "shutdown-grace", env: ["SHUTDOWN_GRACE"], defaultValue: "2s", help: "On SIGTERM: how long to drain (503 on /health, Close 1001 sent) before stopping")
        static let tls = SettingSpec(key: "tls-enabled", env: ["TLS_ENABLED"], defaultValue: "false", help: "TLS on the listener (planned)")
        static let tlsCert = SettingSpec(key: "tls-cert-file", env: ["TLS_CERT_FILE"], defaultValue: nil, help: "TLS certificate (planned)")
        static let tlsKey = SettingSpec(key: "tls-key-file", env: ["TLS_KEY_FILE"], defaultValue: nil, help: "TLS key (planned)")
        static let internalSecret = SettingSpec(key: "internal-api-secret", env: ["INTERNAL_API_SECRET"], defaultValue: nil, help: "Backend API secret (accepted for compatibility)")
        static let backendURL = SettingSpec(key: "backend-url", env: ["BACKEND_URL"], defaultValue: nil, help: "Backend URL (accepted for compatibility)")

        static let all: [SettingSpec] = [host, port, loops, dev, echo, webRoot, logFormat, logLevel, jwtSecret, jwtPrevious,
            jwtIssuer, keepAlive, maxBrowsers, runnerReconnect, pending, relayID, relayRegion, relayCapacity, heartbeat,
            ping, handshake, maxMessage, outbound, replay, origins, grace, tls, tlsCert, tlsKey, internalSecret, backendURL]
    }

    /// Resolves and checks every setting; the first bad one stops start-up.
    static func resolve(_ s: SettingSources, hostname: String) throws -> RelaySettings {
        var r = RelaySettings()
        r.dev = try s.bool(Spec.dev)
        r.host = s.string(Spec.host) ?? (r.dev ? "127.0.0.1" : "0.0.0.0")
        do { _ = try SocketAddress(host: r.host, port: 0) } catch {
            throw ConfigurationError(Spec.host, value: r.host, expected: "a numeric IPv4 or IPv6 address", origin: s.raw(Spec.host)?.origin ?? "default")
        }
        r.port = try s.int(Spec.port, in: 1...65535)
        r.loops = try s.int(Spec.loops, in: 1...256)
        r.echoEndpoint = try s.bool(Spec.echo)
        r.webRoot = s.string(Spec.webRoot)
        r.logFormat = s.string(Spec.logFormat) ?? "logfmt"
        guard ["logfmt", "json"].contains(r.logFormat) else {
            throw ConfigurationError(Spec.logFormat, value: r.logFormat, expected: "logfmt or json", origin: s.raw(Spec.logFormat)!.origin)
        }
        r.logLevel = s.string(Spec.logLevel) ?? "info"
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(r.logLevel) else {
            throw ConfigurationError(Spec.logLevel, value: r.logLevel, expected: "trace, debug, info, notice, warning, error or critical", origin: s.raw(Spec.logLevel)!.origin)
        }
        if let secret = s.string(Spec.jwtSecret), !secret.isEmpty {
            r.jwtSecrets = [Array(secret.utf8)]
        }
        if let previous = s.string(Spec.jwtPrevious) {
            r.jwtSecrets += previous.split(separator: ",").map { Array($0.utf8) }.filter { !$0.isEmpty }
        }
        let issuer = s.string(Spec.jwtIssuer) ?? ""
        r.jwtIssuer = issuer.isEmpty ? nil : issuer
        r.keepAliveDuration = try s.duration(Spec.keepAlive)
        r.maxBrowsersPerPod = try s.int(Spec.maxBrowsers, in: 1...100_000)
        r.runnerReconnectTimeout = try s.duration(Spec.runnerReconnect)
        r.pendingConnectionTimeout = try s.duration(Spec.pending)
        r.relayID = s.string(Spec.relayID) ?? "relay-\(hostname)"
        r.relayRegion = s.string(Spec.relayRegion) ?? "default"
        r.relayCapacity = try s.int(Spec.relayCapacity, in: 1...10_000_000)
        _ = try s.duration(Spec.heartbeat)
        r.pingInterval = try s.duration(Spec.ping, minimum: 10_000_000)
        r.handshakeTimeout = try s.duration(Spec.handshake, minimum: 10_000_000)
        r.maxMessageSize = try s.int(Spec.maxMessage, in: 1024...(256 << 20))
        r.outboundQueueBytes = try s.int(Spec.outbound, in: 16 << 10...(1 << 30))
        r.replayRingBytes = try s.int(Spec.replay, in: 0...(1 << 30))
        r.shutdownGrace = try s.duration(Spec.grace, minimum: 0)
        r.allowedOrigins = (s.string(Spec.origins) ?? "").split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        if try s.bool(Spec.tls) {
            throw ConfigurationError("tls-enabled (--tls-enabled, TLS_ENABLED) is set, but TLS is not implemented in this build yet; terminate TLS in front of the relay (e.g. Traefik) for now")
        }
        if r.jwtSecrets.isEmpty && !r.dev {
            throw ConfigurationError("jwt-secret (--jwt-secret, JWT_SECRET) is required: set JWT_SECRET to the backend's token secret, or run with --dev for a generated one")
        }
        return r
    }
}
