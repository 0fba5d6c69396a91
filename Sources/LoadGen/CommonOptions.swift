import ArgumentParser
import Reactor
import RelayClient

/// Options every scenario shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "relay or nats") var target: String = "relay"
    @Option(help: "How relay clients connect: ws (WebSocket over HTTP/1.1), h2c (WebSockets over HTTP/2, prior knowledge), h2 (the same over TLS with ALPN), grpc (relay.v1.Relay/Attach over h2c, or h2 with --tls).") var transport: String = "ws"
    @Flag(help: "Offer permessage-deflate on WebSockets (each client compresses what it sends and inflates what it gets, one codec per loop).") var compression = false
    @Option(name: .customLong("streams-per-connection"), help: "HTTP/2 transports: streams multiplexed on one connection (a loop opens another when one is full).") var streamsPerConnection: Int = 100
    @Option(help: "Server base URL (ws://host:port or wss://host:port); nats: its websocket listener.") var url: String = "ws://127.0.0.1:8090"
    @Flag(help: "Connect with TLS (as if the URL were wss://).") var tls = false
    @Option(name: .customLong("ca-file"), help: "PEM CA that signed the server's certificate (default: the system's CAs).") var caFile: String?
    @Flag(help: "TLS without verifying the server's certificate (self-signed test servers).") var insecure = false
    @Option(help: "The relay's JWT secret (loadgen mints its own tokens).") var secret: String = "loadgen-secret"
    @Option(help: "Issuer claim of minted tokens.") var issuer: String = "agentsmesh-relay"
    @Option(help: "Client event loops (threads).") var loops: Int = EventLoopGroup.coreCount
    @Option(help: "Measured seconds.") var duration: Double = 10
    @Option(help: "Seconds of load before measuring.") var warmup: Double = 1
    @Option(name: .customLong("connect-timeout"), help: "Seconds to wait for every connection to be ready.") var connectTimeout: Double = 60
    @Option(name: .customLong("server-pid"), help: "The server's pid: its CPU and RSS are reported.") var serverPID: Int32?
    @Option(help: "Connect from 127.0.0.1 … 127.0.0.N (spreads ephemeral ports).") var sources: Int = 1
    @Option(help: "Write the result as JSON to this file.") var json: String?
    @Flag(help: "No progress line.") var quiet = false
    @Option(help: "Client processes: split the connections over N workers (one process holds at most ~19,000 sockets).") var processes: Int = 1
    @Option(name: .customLong("worker-index"), help: .hidden) var workerIndex: Int?
    @Option(help: .hidden) var barrier: String?

    var scenarioName = ""

    func makeTarget() throws -> Target {
        guard let kind = Target.Kind(rawValue: target) else { throw ValidationError("--target must be relay or nats") }
        guard let via = Target.Transport(rawValue: transport) else { throw ValidationError("--transport must be ws, h2c, h2 or grpc") }
        guard via == .ws || kind == .relay else { throw ValidationError("--transport \(transport) is for --target relay") }
        guard streamsPerConnection >= 1 else { throw ValidationError("--streams-per-connection must be ≥ 1") }
        guard !compression || via == .ws else { throw ValidationError("--compression is for --transport ws (WebSockets over HTTP/1.1)") }
        guard var base = WebSocketURL(url) else { throw ValidationError("--url must look like ws://127.0.0.1:8090 or wss://…") }
        if tls || via == .h2 { base = base.withTLS() }
        var context: TLSContext? = nil
        if base.secure {
            do {
                context = try TLSContext.client(caFile: caFile, verifyPeer: !insecure,
                                                applicationProtocols: via == .ws ? ["http/1.1"] : ["h2"])
            } catch {
                throw ValidationError("--ca-file: \(error)")
            }
        }
        var addrs: [SocketAddress] = []
        if sources > 1 {
            for i in 1...sources { addrs.append(try SocketAddress(host: "127.0.0.\(i)", port: 0)) }
        }
        return Target(kind: kind, url: base, secret: secret, issuer: issuer, sources: addrs, tls: context,
                      transport: via, pool: via == .ws ? nil : HTTP2Pool(streamsPerConnection: streamsPerConnection),
                      codecs: compression ? CodecPool() : nil)
    }

    enum CodingKeys: CodingKey {
        case target, transport, compression, streamsPerConnection, url, tls, caFile, insecure, secret, issuer, loops, duration, warmup, connectTimeout, serverPID, sources, json, quiet
        case processes, workerIndex, barrier
    }
}

extension CommonOptions {
    /// Runs a scenario here, or over `--processes` workers, and reports it.
    /// `extra` adds figures computed from the result (e.g. memory per connection).
    func execute(scenario: String, parameters: [(String, Int64)],
                 extra: (RunResult) -> [(String, Int64)] = { _ in [] },
                 _ body: (Harness) -> RunResult) throws {
        var options = self
        options.scenarioName = scenario
        let result: RunResult
        if let merged = try Supervisor.runWorkersIfParent(options) {
            result = merged
        } else {
            result = body(try Harness(options: options))
        }
        let report = Report(scenario: scenario, options: options, parameters: parameters + extra(result), result: result)
        // A worker reports to its parent only, through its JSON file.
        if workerIndex == nil { report.print(to: json) } else { report.write(to: json) }
        if result.error != nil { throw ExitCode.failure }
    }

    /// This process's share of `count` items (pods, connections) in a multi-process run.
    func owns(_ index: Int) -> Bool { index % processes == (workerIndex ?? 0) }
}
