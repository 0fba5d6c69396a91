import Glibc
import Logging
import Reactor
import Framing

/// `relay --dev`: a generated secret (unless one is given), the terminal
/// page, and a demo pod whose runner is `relay attach … -- $SHELL` started as
/// a child process. Listens on 127.0.0.1 unless told otherwise: it hands out
/// a shell.
public struct DevMode {
    static let podKey = "demo"
    private(set) var settings: RelaySettings
    let secret: String
    private var child: pid_t = 0

    init(settings: RelaySettings) {
        var s = settings
        if s.jwtSecrets.isEmpty {
            var raw = [UInt8](repeating: 0, count: 24)
            for i in raw.indices { raw[i] = UInt8.random(in: 0...255) }
            s.jwtSecrets = [Array(Base64.encodeURL(raw).utf8)]
        }
        secret = String(decoding: s.jwtSecrets[0], as: UTF8.self)
        self.settings = s
    }

    /// A token for `podKey` signed with `secret` (runner when `userID` is 0).
    public static func mint(secret: String, podKey: String, userID: Int64, issuer: String?, lifetime: Int64, scope: String? = nil) -> String {
        let now = Int64(time(nil))
        let claims = JWTClaims(podKey: podKey, runnerID: 1, userID: userID, orgID: 1, exp: now + lifetime, iat: now,
                               iss: issuer, sub: podKey, scope: scope)
        return JWTSigner.sign(claims, secret: Array(secret.utf8))
    }

    /// Starts the demo runner and prints the page's address.
    mutating func start(port: Int, logger: Logger) throws {
        let host = settings.host == "0.0.0.0" || settings.host == "::" ? "127.0.0.1" : settings.host
        let shell = ProcessEnvironment.value("SHELL") ?? "/bin/bash"
        let exe = "/proc/self/exe"
        let authority = "\(host.contains(":") ? "[\(host)]" : host):\(port)"
        // With TLS the demo runner connects to this very process over
        // loopback: it need not verify the certificate it is being served.
        var args = [exe, "attach", "--url", "\(settings.tls == nil ? "ws" : "wss")://\(authority)", "--pod", Self.podKey, "--secret", secret,
                    "--issuer", settings.jwtIssuer ?? ""]
        if settings.tls != nil { args.append("--insecure") }
        args += ["--", shell]
        var cargs = args.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        let rc = posix_spawn(&child, exe, nil, &attr, &cargs, environ)
        posix_spawnattr_destroy(&attr)
        if rc != 0 { throw SystemError("posix_spawn relay attach", code: rc) }
        let token = Self.mint(secret: secret, podKey: Self.podKey, userID: 1, issuer: settings.jwtIssuer, lifetime: 12 * 3600)
        let url = "\(settings.tls == nil ? "http" : "https")://\(authority)/?token=\(token)"
        logger.notice("dev mode: demo pod attached to \(shell)", metadata: ["pod": "\(Self.podKey)"])
        let banner = "\nOpen the demo terminal:\n  \(url)\n\n"
        _ = banner.withCString { write(1, $0, strlen($0)) }
    }

    /// Ends the demo runner.
    func stop() {
        guard child > 0 else { return }
        kill(child, SIGTERM)
        var status: Int32 = 0
        waitpid(child, &status, 0)
    }
}
