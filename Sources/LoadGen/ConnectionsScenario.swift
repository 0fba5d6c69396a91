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
        var options = common
        options.scenarioName = "connections"
        options.warmup = 0
        let pid = common.serverPID!
        let baseline = ProcessCPU.residentBytes(pid: pid) ?? 0
        let harness = try Harness(options: options)
        let pods = (connections + perPod - 1) / perPod
        let (n, perPod) = (connections, self.perPod)
        let loops = harness.group.loops.count
        let holder = PodHolder()
        let result = harness.run(
            connections: n + pods,
            setup: { loop, stats, h in
                for p in stride(from: loop.index, to: pods, by: loops) {
                    let count = min(perPod, n - p * perPod)
                    holder.add(FanoutPod(index: p, subscribers: count, size: 64, rate: nil, window: 1,
                                         loop: loop, stats: stats, harness: h), loop: loop.index)
                }
            },
            start: { _ in },
            expectedDeliveries: { _ in 0 })
        let total = n + pods
        let grown = (result.serverRSS ?? baseline) > baseline ? Int64((result.serverRSS ?? baseline) - baseline) : 0
        Report(scenario: "connections", options: options, parameters: [
            ("subscribers", Int64(n)), ("pods", Int64(pods)), ("connections_total", Int64(total)),
            ("server_rss_baseline_bytes", Int64(baseline)), ("server_rss_growth_bytes", grown),
            ("server_rss_bytes_per_connection", grown / Int64(max(total, 1))),
        ], result: result).print(to: common.json)
        if result.error != nil { throw ExitCode.failure }
    }
}
