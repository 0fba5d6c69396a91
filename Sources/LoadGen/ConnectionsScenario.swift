import ArgumentParser
import Reactor

/// Holds N idle subscribers (browsers subscribed to pods, each pod with its
/// publisher) and reports the server's RSS growth per connection.
struct Connections: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Idle subscribed connections: server memory per connection.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Subscribers to hold.") var connections: Int = 1000
    @Option(name: .customLong("per-pod"), help: "Subscribers per pod.") var perPod: Int = 9

    func validate() throws {
        guard common.serverPID != nil else { throw ValidationError("connections needs --server-pid to read the server's RSS") }
    }

    func run() throws {
        let pid = common.serverPID!
        let baseline = ProcessCPU.residentBytes(pid: pid) ?? 0
        let pods = (connections + perPod - 1) / perPod
        let (n, perPod) = (connections, self.perPod)
        var options = common
        options.warmup = 0
        try options.execute(scenario: "connections", parameters: [
            ("subscribers", Int64(n)), ("pods", Int64(pods)), ("connections_total", Int64(n + pods)),
            ("server_rss_baseline_bytes", Int64(baseline)),
        ], extra: { result in
            let end = result.serverRSS ?? baseline
            let grown = end > baseline ? Int64(end - baseline) : 0
            return [("server_rss_growth_bytes", grown), ("server_rss_bytes_per_connection", grown / Int64(max(n + pods, 1)))]
        }) { harness in
            let holder = PodHolder()
            let mine = (0..<pods).filter { harness.options.owns($0) }
            let connections = mine.reduce(0) { $0 + min(perPod, n - $1 * perPod) + 1 }
            return harness.run(
                connections: connections,
                setup: { loop, stats, h in
                    for p in h.indices(count: pods, loop: loop.index) {
                        let count = min(perPod, n - p * perPod)
                        holder.add(FanoutPod(index: p, subscribers: count, size: 64, rate: nil, window: 1,
                                             loop: loop, stats: stats, harness: h), loop: loop.index)
                    }
                },
                start: { _ in },
                expectedDeliveries: { _ in 0 })
        }
    }
}
