import ArgumentParser
import Reactor

/// Round trips on N connections (relay: its /test/echo endpoint, started
/// with --echo-endpoint; nats: each connection publishes to a subject it
/// subscribes to), `--window` messages in flight per connection.
struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Round trips on N connections.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Connections.") var connections: Int = 100
    @Option(help: "Message size in bytes.") var size: Int = 512
    @Option(help: "Messages in flight per connection.") var window: Int = 1

    func validate() throws {
        // The echo endpoint is a WebSocket path; gRPC has only Attach.
        if common.transport == "grpc" {
            throw ValidationError("echo runs over --transport ws, h2c or h2: the relay's echo endpoint is a WebSocket (gRPC has only relay.v1.Relay/Attach)")
        }
    }

    func run() throws {
        let (n, size, window) = (connections, self.size, self.window)
        try common.execute(scenario: "echo", parameters: [
            ("connections", Int64(n)), ("message_size", Int64(size)), ("window", Int64(window)),
        ]) { harness in
            let holder = PodHolder()
            return harness.run(
                connections: harness.share(n),
                setup: { loop, stats, h in
                    for i in h.indices(count: n, loop: loop.index) {
                        holder.add(EchoConnection(index: i, size: size, window: window, loop: loop, stats: stats, harness: h), loop: loop.index)
                    }
                },
                start: { loop in holder.forEach(loop: loop.index) { (c: EchoConnection) in c.start() } },
                expectedDeliveries: { $0 })
        }
    }
}

final class EchoConnection {
    var endpoint: MessageEndpoint!
    // The stats and the harness outlive the run: no reference counting per message.
    unowned(unsafe) let stats: LoopStats
    unowned(unsafe) let harness: Harness
    let window: Int
    private var payload: [UInt8]
    private var seq: UInt64 = 0

    init(index: Int, size: Int, window: Int, loop: EventLoop, stats: LoopStats, harness: Harness) {
        self.stats = stats
        self.harness = harness
        self.window = window
        payload = StampedPayload.make(size: size)
        do {
            endpoint = try harness.target.echo(index: index, on: loop)
        } catch {
            harness.fail("echo: \(error)")
            return
        }
        endpoint.onReady = { [unowned self] in self.harness.ready.add(1, ordering: .relaxed) }
        endpoint.onClosed = { [unowned self] why in self.harness.closed(why) }
        endpoint.onMessage = { [unowned(unsafe) self] bytes in
            guard let (stamp, _) = StampedPayload.read(bytes) else { return }
            stats.recordDelivery(bytes: bytes.count, stampNanos: stamp, now: MonotonicClock.now())
            sendOne()
        }
    }

    func start() { for _ in 0..<window { sendOne() } }

    private func sendOne() {
        guard harness.running.load(ordering: .relaxed) else { return }
        StampedPayload.stamp(&payload, nanos: MonotonicClock.now(), seq: seq)
        seq &+= 1
        if payload.withUnsafeBytes({ endpoint.send($0) }) { LoopStats.bump(stats.sent, 1) }
    }
}
