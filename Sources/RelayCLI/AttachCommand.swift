import ArgumentParser
import Glibc
import Logging
import Reactor
import Framing
import RelayClient
import RelayNode

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Run a command in a pseudo-terminal and attach it to a pod as its runner.",
        discussion: "Example: relay attach --url ws://127.0.0.1:8090 --pod demo --secret \"$JWT_SECRET\" -- bash")

    @Option(help: "The relay's base URL (ws://host:port, or wss://host:port for TLS).") var url: String
    @Option(name: .customLong("ca-file"), help: "With wss://: PEM CA that signed the relay's certificate (default: the system's CAs).") var caFile: String?
    @Flag(help: "With wss://: do not verify the relay's certificate (self-signed test relays).") var insecure = false
    @Option(name: .customLong("client-cert"), help: "With wss://: PEM client certificate (mutual TLS).") var clientCert: String?
    @Option(name: .customLong("client-key"), help: "With wss://: PEM key of --client-cert (default: the same file).") var clientKey: String?
    @Option(help: "The pod key to publish to.") var pod: String
    @Option(help: "A runner token (or use --secret to mint one).") var token: String?
    @Option(help: "The relay's JWT secret: mint a fresh runner token per connection [JWT_SECRET].") var secret: String?
    @Option(help: "Issuer claim of minted tokens.") var issuer = "agentsmesh-relay"
    @Option(name: .customLong("log-level")) var logLevel = "notice"
    @Flag(help: "Offer permessage-deflate: the command's output goes up compressed when the relay agrees.") var compression = false
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).") var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        if argv.isEmpty { argv = [ProcessEnvironment.value("SHELL") ?? "/bin/sh"] }
        guard let base = WebSocketURL(url) else { RelayProcess.fail("invalid --url '\(url)': expected ws://host:port or wss://host:port") }
        var tls: TLSContext? = nil
        if base.secure {
            do {
                tls = try TLSContext.client(caFile: caFile, verifyPeer: !insecure, certificateFile: clientCert, keyFile: clientKey)
            } catch {
                RelayProcess.fail("TLS: \(error)")
            }
        }
        let secret = self.secret ?? ProcessEnvironment.value("JWT_SECRET")
        guard token != nil || secret != nil else { RelayProcess.fail("attach needs --token or --secret (or JWT_SECRET)") }
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        LineLogHandler.bootstrap(level: level)
        let logger = Logger(label: "attach")
        let fixed = token
        let pod = self.pod, issuer = self.issuer
        let group = try EventLoopGroup(loopCount: 1)
        let runner = PTYRunner(group: group, base: base, tls: tls, compression: compression ? PerMessageDeflateCodec() : nil,
                               podKey: pod, logger: logger) {
            if let fixed { return fixed }
            return DevMode.mint(secret: secret!, podKey: pod, userID: 0, issuer: issuer, lifetime: 3600)
        }
        nonisolated(unsafe) let r = runner
        let args = argv
        try group.loops[0].handleSignals { _ in r.hangUp() }
        group.loops[0].execute {
            do { try r.start(argv: args) } catch {
                logger.error("cannot start command", metadata: ["error": "\(error)"])
                group.stop()
            }
        }
        group.start()
        group.join()
        Glibc.exit(runner.exitStatus)
    }
}
