import ArgumentParser
import Reactor

/// Browsers → runner: every browser types `--rate` keystrokes per second
/// (Input frames carrying their send time); the runner records the latency.
struct Input: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Per-keystroke latency, browsers to runner (relay only).")
    @OptionGroup var common: CommonOptions
    @Option(help: "Pods.") var pods: Int = 10
    @Option(help: "Browsers per pod.") var browsers: Int = 3
    @Option(help: "Keystrokes per second per browser.") var rate: Double = 20

    func validate() throws {
        guard common.target == "relay" else { throw ValidationError("input measures the relay's browser → runner path: --target relay") }
    }

    func run() throws {
        let (pods, browsers, rate) = (self.pods, self.browsers, self.rate)
        try common.execute(scenario: "input", parameters: [
            ("pods", Int64(pods)), ("browsers_per_pod", Int64(browsers)), ("keystrokes_per_s_per_browser", Int64(rate)),
        ]) { harness in
            let holder = PodHolder()
            return harness.run(
                connections: harness.share(pods) * (browsers + 1),
                setup: { loop, stats, h in
                    for p in h.indices(count: pods, loop: loop.index) {
                        holder.add(TypingPod(index: p, browsers: browsers, rate: rate, loop: loop, stats: stats, harness: h), loop: loop.index)
                    }
                },
                start: { loop in holder.forEach(loop: loop.index) { (p: TypingPod) in p.start() } },
                expectedDeliveries: { $0 })
        }
    }
}

final class TypingPod {
    var runner: MessageEndpoint!
    var typists: [MessageEndpoint] = []
    let stats: LoopStats
    unowned let harness: Harness
    unowned let loop: EventLoop
    let rate: Double
    private var keystroke = StampedPayload.make(size: StampedPayload.headerSize, type: 0x03)
    private var sent: UInt64 = 0
    private var schedule: OpenLoopSchedule?

    init(index: Int, browsers: Int, rate: Double, loop: EventLoop, stats: LoopStats, harness: Harness) {
        self.stats = stats
        self.harness = harness
        self.loop = loop
        self.rate = rate * Double(browsers)
        let pod = "loadgen-\(harness.runID)-input-\(index)"
        do {
            runner = try harness.target.publisher(pod: pod, index: index, on: loop)
            for b in 0..<browsers { typists.append(try harness.target.subscriber(pod: pod, index: index * browsers + b, on: loop)) }
        } catch {
            harness.fail("input: \(error)")
            return
        }
        for e in [runner!] + typists {
            e.onReady = { [unowned self] in self.harness.ready.add(1, ordering: .relaxed) }
            e.onClosed = { [unowned self] why in self.harness.closed(why) }
        }
        runner.onMessage = { [stats] bytes in
            guard bytes.first == 0x03, let (stamp, _) = StampedPayload.read(bytes) else { return }
            stats.recordDelivery(bytes: bytes.count, stampNanos: stamp, now: MonotonicClock.now())
        }
    }

    func start() {
        schedule = OpenLoopSchedule(rate: rate, start: MonotonicClock.now())
        tick()
    }

    /// Open loop across the pod's browsers in turn, stamped with the intended time.
    private func tick() {
        guard harness.running.load(ordering: .relaxed), let schedule else { return }
        let now = MonotonicClock.now()
        let due = schedule.due(at: now)
        while sent < due {
            StampedPayload.stamp(&keystroke, nanos: schedule.intended(sent), seq: sent)
            let typist = typists[Int(sent % UInt64(typists.count))]
            if keystroke.withUnsafeBytes({ typist.send($0) }) { LoopStats.bump(stats.sent, 1) }
            sent &+= 1
        }
        loop.schedule(afterNanoseconds: schedule.wait(sent: sent, now: now)) { [weak self] in self?.tick() }
    }
}
