import Reactor
import Framing

/// Every setting of the relay, resolved and checked once at start-up.
public struct RelaySettings: Sendable {
    var host = "0.0.0.0"
    public internal(set) var port = 8090
    var loops = EventLoopGroup.coreCount
    var dev = false
    var echoEndpoint = false
    var webRoot: String? = nil
    var logFormat = "logfmt"
    var logLevel = "info"

    var jwtSecrets: [[UInt8]] = []
    var jwtIssuer: String? = "agentsmesh-relay"
    /// The pod lifecycle, replay and slow-consumer knobs.
    var pod = PodSettings()
    var relayID = "relay"
    var relayRegion = "default"
    var relayCapacity = 1000

    var pingInterval: UInt64 = 25_000_000_000
    var handshakeTimeout: UInt64 = 10_000_000_000
    var closeTimeout: UInt64 = 5_000_000_000
    var maxMessageSize = 4 << 20
    var outboundQueueBytes = 1 << 20
    var allowedOrigins: [String] = []
    /// Where a browser's connection lives: on its pod's home loop (`home`),
    /// or on the loop that accepted it, reached through that loop's mirror
    /// of the pod (`accept`).
    var browserPlacement = "home"
    var shutdownGrace: UInt64 = 2_000_000_000
    /// TLS on the listener (nil: plain TCP).
    var tls: TLSSettings? = nil
    /// HTTP/2 on the port (h2c by prior knowledge, h2 by ALPN); nil: off.
    var http2: HTTP2Settings? = HTTP2Settings()
    /// permessage-deflate: "shared" (each message compressed once, shared
    /// by every compressing subscriber) or "off".
    var compression = "shared"
    /// Messages smaller than this go uncompressed (RSV1 clear).
    var compressionMinSize = 64

    public init() {}

    /// The settings table: the one place a setting is declared. Flags, help,
    /// environment names, YAML keys and error messages all come from here.
    public enum Spec {
        static let host = SettingSpec("host", env: ["SERVER_HOST"], default: nil, .text, help: "Address to listen on (default 0.0.0.0; 127.0.0.1 in dev mode)")
        static let port = SettingSpec("port", env: ["SERVER_PORT"], default: "8090", .integer(1...65535), help: "TCP port")
        static let loops = SettingSpec("loops", env: ["LOOPS"], default: "\(EventLoopGroup.coreCount)", .integer(1...256), help: "Event loops (threads); default: one per core")
        static let dev = SettingSpec("dev", env: ["DEV_MODE"], default: "false", .flag, help: "Dev mode: generated secret, demo pod, terminal page")
        static let echo = SettingSpec("echo-endpoint", env: ["ECHO_ENDPOINT"], default: "false", .flag, help: "Serve the test-only echo WebSocket at /test/echo")
        static let webRoot = SettingSpec("web-root", env: ["WEB_ROOT"], default: nil, .text, help: "Directory with the terminal page's xterm.js files (default: .cache/web of the checkout)")
        static let logFormat = SettingSpec("log-format", env: ["LOG_FORMAT"], default: "logfmt", .choice(["logfmt", "json"]), help: "Log line format")
        static let logLevel = SettingSpec("log-level", env: ["LOG_LEVEL"], default: "info", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), help: "Lowest level logged")
        static let jwtSecret = SettingSpec("jwt-secret", env: ["JWT_SECRET"], default: nil, .text, help: "HMAC secret for tokens (required outside dev mode)")
        static let jwtPrevious = SettingSpec("jwt-previous-secrets", env: ["JWT_PREVIOUS_SECRETS"], default: nil, .list, help: "Comma-separated older secrets still accepted (rotation)")
        static let jwtIssuer = SettingSpec("jwt-issuer", env: ["JWT_ISSUER"], default: "agentsmesh-relay", .text, help: "Required iss claim (empty: no check)")
        static let keepAlive = SettingSpec("keep-alive-duration", env: ["KEEP_ALIVE_DURATION"], default: "30s", .duration(minimum: 1_000_000), help: "How long a pod outlives its last browser")
        static let maxBrowsers = SettingSpec("max-browsers-per-pod", env: ["MAX_BROWSERS_PER_POD"], default: "10", .integer(1...100_000), help: "Browsers per pod; one more is closed with 1008")
        static let runnerReconnect = SettingSpec("runner-reconnect-timeout", env: ["RUNNER_RECONNECT_TIMEOUT"], default: "30s", .duration(minimum: 1_000_000), help: "How long browsers wait for a runner to return")
        static let pending = SettingSpec("pending-connection-timeout", env: ["PENDING_CONNECTION_TIMEOUT"], default: "60s", .duration(minimum: 1_000_000), help: "How long a connection waits for its counterpart")
        static let relayID = SettingSpec("relay-id", env: ["RELAY_ID"], default: nil, .text, help: "This node's id (default relay-<hostname>)")
        static let relayRegion = SettingSpec("relay-region", env: ["RELAY_REGION"], default: "default", .text, help: "Region label")
        static let relayCapacity = SettingSpec("relay-capacity", env: ["RELAY_CAPACITY"], default: "1000", .integer(1...10_000_000), help: "Advertised capacity")
        static let heartbeat = SettingSpec("heartbeat-interval", env: ["HEARTBEAT_INTERVAL"], default: "10s", .duration(minimum: 1_000_000), help: "Backend heartbeat interval (accepted for compatibility; no backend registration yet)")
        static let ping = SettingSpec("ping-interval", env: ["PING_INTERVAL"], default: "25s", .duration(minimum: 10_000_000), help: "WebSocket ping interval; silent for 2 intervals = closed")
        static let handshake = SettingSpec("handshake-timeout", env: ["HANDSHAKE_TIMEOUT"], default: "10s", .duration(minimum: 10_000_000), help: "Time from accept to a complete request head")
        static let closeTimeout = SettingSpec("close-timeout", env: ["CLOSE_TIMEOUT"], default: "5s", .duration(minimum: 10_000_000), help: "How long to wait for the peer's Close after sending ours")
        static let maxMessage = SettingSpec("max-message-size", env: ["MAX_MESSAGE_SIZE"], default: "\(4 << 20)", .integer(1024...(256 << 20)), help: "Largest WebSocket message in bytes (larger: close 1009)")
        static let outbound = SettingSpec("outbound-queue-bytes", env: ["OUTBOUND_QUEUE_BYTES"], default: "\(1 << 20)", .integer((16 << 10)...(1 << 30)), help: "Per-connection outbound queue bound in bytes")
        static let replay = SettingSpec("replay-ring-bytes", env: ["REPLAY_RING_BYTES"], default: "\(1 << 20)", .integer(0...(1 << 30)), help: "Per-pod replay ring in bytes")
        static let heldInput = SettingSpec("held-input-bytes", env: ["HELD_INPUT_BYTES"], default: "\(64 << 10)", .integer(0...(64 << 20)), help: "Browser input held per pod while its runner is away")
        static let lagLimit = SettingSpec("lag-limit", env: ["LAG_LIMIT"], default: "3", .integer(1...1000), help: "Lags within lag-window that close a browser with 4008")
        static let lagWindow = SettingSpec("lag-window", env: ["LAG_WINDOW"], default: "60s", .duration(minimum: 1_000_000), help: "The window lag-limit counts lags in")
        static let placement = SettingSpec("browser-placement", env: ["BROWSER_PLACEMENT"], default: "home", .choice(["home", "accept"]), help: "Browser connections move to their pod's loop (home), or stay on the loop that accepted them and get the pod's frames through that loop's mirror of it (accept: spreads a large pod's fan-out over every loop)")
        static let origins = SettingSpec("allowed-origins", env: ["ALLOWED_ORIGINS"], default: "", .list, help: "Comma-separated Origin allow-list (empty: any)")
        static let grace = SettingSpec("shutdown-grace", env: ["SHUTDOWN_GRACE"], default: "2s", .duration(minimum: 0), help: "On SIGTERM: how long to drain (503 on /health, Close 1001 sent) before stopping")
        static let tls = SettingSpec("tls", env: ["TLS_ENABLED"], default: "false", .flag, help: "TLS on the listener: https:// and wss:// on the same port (SIGHUP reloads the files)")
        static let tlsCert = SettingSpec("tls-cert", env: ["TLS_CERT_FILE"], default: nil, .text, help: "PEM certificate chain, leaf first (required with --tls)")
        static let tlsKey = SettingSpec("tls-key", env: ["TLS_KEY_FILE"], default: nil, .text, help: "PEM private key, unencrypted (required with --tls)")
        static let tlsClientCA = SettingSpec("tls-client-ca", env: ["TLS_CLIENT_CA_FILE"], default: nil, .text, help: "PEM CA: mutual TLS, every client must present a certificate it signed")
        static let tlsMinVersion = SettingSpec("tls-min-version", env: ["TLS_MIN_VERSION"], default: "1.2", .choice(["1.2", "1.3"]), help: "Oldest TLS version accepted")
        static let tlsRunnerSubject = SettingSpec("tls-runner-subject", env: ["TLS_RUNNER_SUBJECT"], default: "", .text, help: "With --tls-client-ca: a runner's certificate subject must match this glob, e.g. '/CN=runner-*' (empty: any)")
        static let http2 = SettingSpec("http2", env: ["HTTP2"], default: "on", .choice(["on", "off"]), help: "HTTP/2 on the same port: h2c with prior knowledge, h2 by ALPN with --tls; WebSockets over HTTP/2 (RFC 8441) and gRPC")
        static let http2Streams = SettingSpec("http2-max-streams", env: ["HTTP2_MAX_CONCURRENT_STREAMS"], default: "128", .integer(1...65535), help: "Streams one HTTP/2 connection may have open at once")
        static let http2Window = SettingSpec("http2-stream-window", env: ["HTTP2_STREAM_WINDOW"], default: "\(1 << 20)", .integer(65535...Int(Int32.max)), help: "Bytes a peer may send on one HTTP/2 stream before the relay reads them (what a paused stream holds)")
        static let http2HeaderList = SettingSpec("http2-max-header-list", env: ["HTTP2_MAX_HEADER_LIST_SIZE"], default: "16384", .integer(1024...(1 << 20)), help: "Largest HTTP/2 header list (RFC 9113 size); larger requests get 431")
        static let compression = SettingSpec("compression", env: ["COMPRESSION"], default: "shared", .choice(["shared", "off"]), help: "permessage-deflate (RFC 7692) for WebSockets that offer it: each runner frame compressed once and shared by every compressing browser (shared), or none (off)")
        static let compressionMin = SettingSpec("compression-min-size", env: ["COMPRESSION_MIN_SIZE"], default: "64", .integer(0...(1 << 20)), help: "Messages smaller than this many bytes are sent uncompressed")
        static let internalSecret = SettingSpec("internal-api-secret", env: ["INTERNAL_API_SECRET"], default: nil, .text, help: "Backend API secret (accepted for compatibility; unused yet)")
        static let backendURL = SettingSpec("backend-url", env: ["BACKEND_URL"], default: nil, .text, help: "Backend URL (accepted for compatibility; unused yet)")

        public static let all: [SettingSpec] = [host, port, loops, dev, echo, webRoot, logFormat, logLevel, jwtSecret, jwtPrevious,
            jwtIssuer, keepAlive, maxBrowsers, runnerReconnect, pending, relayID, relayRegion, relayCapacity, heartbeat,
            ping, handshake, closeTimeout, maxMessage, outbound, replay, heldInput, lagLimit, lagWindow, placement, origins, grace,
            tls, tlsCert, tlsKey, tlsClientCA, tlsMinVersion, tlsRunnerSubject, http2, http2Streams, http2Window, http2HeaderList,
            compression, compressionMin, internalSecret, backendURL]
    }

    /// Resolves and checks every setting; the first bad one stops start-up.
    static func resolve(_ s: SettingSources, hostname: String) throws -> RelaySettings {
        var r = RelaySettings()
        r.dev = try s.bool(Spec.dev)
        r.host = s.string(Spec.host) ?? (r.dev ? "127.0.0.1" : "0.0.0.0")
        do { _ = try SocketAddress(host: r.host, port: 0) } catch {
            throw ConfigurationError("invalid value '\(r.host)' for host (\(Spec.host.names)) from \(s.raw(Spec.host)?.origin ?? "default"): expected a numeric IPv4 or IPv6 address")
        }
        r.port = try s.int(Spec.port)
        r.loops = try s.int(Spec.loops)
        r.echoEndpoint = try s.bool(Spec.echo)
        r.webRoot = s.string(Spec.webRoot)
        r.logFormat = try s.choice(Spec.logFormat)
        r.logLevel = try s.choice(Spec.logLevel)
        if let secret = s.string(Spec.jwtSecret), !secret.isEmpty {
            r.jwtSecrets = [Array(secret.utf8)]
        }
        r.jwtSecrets += s.list(Spec.jwtPrevious).map { Array($0.utf8) }
        let issuer = s.string(Spec.jwtIssuer) ?? ""
        r.jwtIssuer = issuer.isEmpty ? nil : issuer
        r.pod.keepAlive = try s.duration(Spec.keepAlive)
        r.pod.maxBrowsers = try s.int(Spec.maxBrowsers)
        r.pod.runnerReconnectTimeout = try s.duration(Spec.runnerReconnect)
        r.pod.pendingTimeout = try s.duration(Spec.pending)
        r.relayID = s.string(Spec.relayID) ?? "relay-\(hostname)"
        r.relayRegion = s.string(Spec.relayRegion) ?? "default"
        r.relayCapacity = try s.int(Spec.relayCapacity)
        _ = try s.duration(Spec.heartbeat)
        r.pingInterval = try s.duration(Spec.ping)
        r.handshakeTimeout = try s.duration(Spec.handshake)
        r.closeTimeout = try s.duration(Spec.closeTimeout)
        r.maxMessageSize = try s.int(Spec.maxMessage)
        r.outboundQueueBytes = try s.int(Spec.outbound)
        r.pod.replayRingBytes = try s.int(Spec.replay)
        r.pod.heldInputBytes = try s.int(Spec.heldInput)
        r.pod.lagLimit = try s.int(Spec.lagLimit)
        r.pod.lagWindow = try s.duration(Spec.lagWindow)
        r.shutdownGrace = try s.duration(Spec.grace)
        r.allowedOrigins = s.list(Spec.origins)
        r.browserPlacement = try s.choice(Spec.placement)
        if try s.choice(Spec.http2) == "on" {
            var h2 = HTTP2Settings()
            h2.maxConcurrentStreams = UInt32(try s.int(Spec.http2Streams))
            h2.streamWindow = UInt32(try s.int(Spec.http2Window))
            h2.maxHeaderListSize = UInt32(try s.int(Spec.http2HeaderList))
            r.http2 = h2
        } else {
            r.http2 = nil
        }
        if try s.bool(Spec.tls) {
            r.tls = try TLSSettings.resolve(s, http2: r.http2 != nil)
        }
        r.compression = try s.choice(Spec.compression)
        r.compressionMinSize = try s.int(Spec.compressionMin)
        if r.jwtSecrets.isEmpty && !r.dev {
            throw ConfigurationError("jwt-secret (--jwt-secret, JWT_SECRET) is required: set JWT_SECRET to the backend's token secret, or run with --dev for a generated one")
        }
        return r
    }
}
