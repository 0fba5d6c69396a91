import ArgumentParser
import Reactor

/// Browsers joining a busy pod: the runner publishes at `--rate` (after a
/// Snapshot), `--joins` browsers per second connect, and each records the
/// time from starting its connection to the first byte of replay.
struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time to first byte for browsers joining a busy pod (relay only).")
    @OptionGroup var common: CommonOptions
    @Option(help: "Frames per second the runner publishes.") var rate: Double = 1000
    @Option(help: "Browsers joining per second.") var joins: Double = 50
    @Option(help: "Frame size.") var size: Int = 256

    func validate() throws {
        guard common.target == "relay" else { throw ValidationError("attach measures the relay's replay: --target relay") }
        guard common.processes == 1 else { throw ValidationError("attach runs in one process") }
    }

    func run() throws {
        let (rate, joins, size) = (self.rate, self.joins, self.size)
        var options = common
        options.loops = 1
        try options.execute(scenario: "attach", parameters: [
            ("runner_rate", Int64(rate)), ("joins_per_s", Int64(joins)), ("frame_size", Int64(size)),
        ]) { harness in
            let holder = PodHolder()
            return harness.run(
                connections: 1,
                setup: { loop, stats, h in holder.add(BusyPod(rate: rate, joins: joins, size: size, loop: loop, stats: stats, harness: h), loop: 0) },
                start: { _ in holder.forEach(loop: 0) { (p: BusyPod) in p.start() } },
                expectedDeliveries: { _ in 0 })
        }
    }
}

final class BusyPod {
    var runner: MessageEndpoint!
    let stats: LoopStats
    unowned let harness: Harness
    unowned let loop: EventLoop
    let rate: Double, joins: Double
    private var payload: [UInt8]
    private var sent: UInt64 = 0, joined: UInt64 = 0
    private var t0: UInt64 = 0
    private var live: [ObjectIdentifier: MessageEndpoint] = [:]

    init(rate: Double, joins: Double, size: Int, loop: EventLoop, stats: LoopStats, harness: Harness) {
        self.stats = stats
        self.harness = harness
        self.loop = loop
        self.rate = rate
        self.joins = joins
        payload = StampedPayload.make(size: size)
        do { runner = try harness.target.publisher(pod: "loadgen-\(harness.runID)-attach", index: 0, on: loop) } catch {
            harness.fail("attach: \(error)")
            return
        }
        runner.onReady = { [unowned self] in
            // A snapshot first, so joiners get Snapshot + tail.
            let snapshot: [UInt8] = [0x01] + Array(#"{"cols":80,"rows":24,"serialized_content":"loadgen"}"#.utf8)
            _ = snapshot.withUnsafeBytes { runner.send($0) }
            self.harness.ready.add(1, ordering: .relaxed)
        }
    }

    func start() {
        t0 = MonotonicClock.now()
        tick()
    }

    private func tick() {
        guard harness.running.load(ordering: .relaxed) else {
            for e in live.values { e.close() }
            return
        }
        let elapsed = Double(MonotonicClock.now() - t0) / 1e9
        while Double(sent) < elapsed * rate {
            StampedPayload.stamp(&payload, nanos: MonotonicClock.now(), seq: sent)
            if payload.withUnsafeBytes({ runner.send($0) }) { LoopStats.bump(stats.sent, 1) }
            sent &+= 1
        }
        while Double(joined) < elapsed * joins { join() }
        loop.schedule(afterNanoseconds: 1_000_000) { [weak self] in self?.tick() }
    }

    private func join() {
        let started = MonotonicClock.now()
        joined &+= 1
        guard let e = try? harness.target.subscriber(pod: "loadgen-\(harness.runID)-attach", index: Int(joined % 1_000_000), on: loop) else {
            stats.errors.add(1, ordering: .relaxed)
            return
        }
        let id = ObjectIdentifier(e)
        live[id] = e
        e.onMessage = { [unowned self, unowned e] bytes in
            guard e.onMessage != nil else { return }
            e.onMessage = nil
            stats.recordDelivery(bytes: bytes.count, stampNanos: started, now: MonotonicClock.now())
            e.close()
        }
        e.onClosed = { [unowned self] _ in live[id] = nil }
    }
}
