import Glibc
import Histogram
import Synchronization
import Reactor
import RelayClient

/// Runs one scenario: client loops, connection set-up, warm-up, the timed
/// run with a live progress line, drain, and the figures.
final class Harness: @unchecked Sendable {
    let options: CommonOptions
    let group: EventLoopGroup
    let stats: [LoopStats]
    let target: Target
    /// Distinguishes this run's pods and subjects from any earlier run's.
    let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    let running = Atomic<Bool>(false)
    /// Set once measuring is over: closes after this are expected.
    let finished = Atomic<Bool>(false)
    let ready = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// First failure message (for the report).
    let firstError = Mutex<String?>(nil)

    init(options: CommonOptions) throws {
        self.options = options
        target = try options.makeTarget()
        group = try EventLoopGroup(loopCount: options.loops)
        stats = group.loops.map { _ in LoopStats() }
    }

    /// The items (pods, connections) of `count` that this process runs on
    /// `loop`: spread over the processes, then over this process's loops.
    func indices(count: Int, loop: Int) -> [Int] {
        let mine = (0..<count).filter { options.owns($0) }
        return stride(from: loop, to: mine.count, by: group.loops.count).map { mine[$0] }
    }

    /// How many of `count` items this process runs.
    func share(_ count: Int) -> Int { (0..<count).filter { options.owns($0) }.count }

    /// A connection closed: an error unless the run is over.
    func closed(_ why: String) {
        if !finished.load(ordering: .relaxed) { fail(why) }
    }

    func fail(_ message: String) {
        failed.add(1, ordering: .relaxed)
        firstError.withLock { if $0 == nil { $0 = message } }
    }

    /// Runs `setup` on every loop (it opens `expected` connections in all and
    /// calls `connectionReady` for each), waits for them, then measures for
    /// the configured duration. `start` runs on each loop when measuring
    /// begins; `expectedDeliveries` gives the deliveries a lossless server would make.
    func run(connections expected: Int,
             setup: @escaping @Sendable (EventLoop, LoopStats, Harness) -> Void,
             start: @escaping @Sendable (EventLoop) -> Void,
             expectedDeliveries: @escaping @Sendable (Int) -> Int) -> RunResult {
        group.start()
        for (i, loop) in group.loops.enumerated() {
            let s = stats[i]
            loop.execute { setup(loop, s, self) }
        }
        let connectDeadline = MonotonicClock.now() + UInt64(options.connectTimeout * 1e9)
        while ready.load(ordering: .relaxed) < expected && failed.load(ordering: .relaxed) == 0 {
            if MonotonicClock.now() > connectDeadline { break }
            progress("connecting \(ready.load(ordering: .relaxed))/\(expected)")
            usleep(100_000)
        }
        let connected = ready.load(ordering: .relaxed)
        guard connected == expected else {
            finishProgress()
            finished.store(true, ordering: .relaxed)
            let why = firstError.withLock { $0 } ?? "timed out"
            shutdown()
            return RunResult.failed("only \(connected) of \(expected) connections became ready: \(why)")
        }
        Supervisor.barrier(options)
        running.store(true, ordering: .relaxed)
        for loop in group.loops { loop.execute { start(loop) } }
        if options.warmup > 0 {
            sleepSeconds(options.warmup) { _ in "warming up" }
        }
        for s in stats { s.measuring.store(true, ordering: .relaxed) }
        let d0 = totalDelivered(), b0 = totalBytes()
        let cpu0 = ProcessCPU.microseconds(), server0 = options.serverPID.flatMap { ProcessCPU.microseconds(pid: $0) }
        let t0 = MonotonicClock.now()
        var last = (t0, d0, b0)
        sleepSeconds(options.duration) { elapsed in
            let now = MonotonicClock.now(), d = self.totalDelivered(), b = self.totalBytes()
            let dt = Double(now - last.0) / 1e9
            let rate = Double(d - last.1) / dt
            let mb = Double(b - last.2) / dt / 1e6
            let errors: Int = self.sum { $0.errors.load(ordering: .relaxed) } + self.failed.load(ordering: .relaxed)
            let dropped: Int = self.sum { $0.dropped.load(ordering: .relaxed) }
            let line = "\(padded(fixed(elapsed, 1), 5))s  \(padded(fixed(rate), 10)) deliveries/s  \(padded(fixed(mb, 1), 8)) MB/s  errors \(errors)  dropped \(dropped)"
            last = (now, d, b)
            return line
        }
        let t1 = MonotonicClock.now()
        let d1 = totalDelivered(), b1 = totalBytes()
        let cpu1 = ProcessCPU.microseconds(), server1 = options.serverPID.flatMap { ProcessCPU.microseconds(pid: $0) }
        let rss = options.serverPID.flatMap { ProcessCPU.residentBytes(pid: $0) }
        running.store(false, ordering: .relaxed)
        // Drain: let what was sent arrive (reach counts every frame sent).
        // A loop may be finishing a send as the flag flips, so the sent
        // count is read again until it and the deliveries settle.
        usleep(50_000)
        let drainDeadline = MonotonicClock.now() + 3_000_000_000
        var previous = -1
        var sentTotal = totalSent()
        while MonotonicClock.now() < drainDeadline {
            sentTotal = totalSent()
            let d = totalDelivered()
            if d >= expectedDeliveries(sentTotal) || d == previous { break }
            previous = d
            usleep(200_000)
        }
        sentTotal = totalSent()
        finishProgress()
        let deliveredTotal = totalDelivered()
        finished.store(true, ordering: .relaxed)
        shutdown()
        var hist = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for s in stats { hist.add(s.latency) }
        let seconds = Double(t1 - t0) / 1e9
        let delivered = d1 - d0
        return RunResult(
            error: nil, seconds: seconds, sent: sentTotal,
            delivered: deliveredTotal, expected: expectedDeliveries(sentTotal),
            deliveriesPerSecond: Double(delivered) / seconds, megabytesPerSecond: Double(b1 - b0) / seconds / 1e6,
            latency: hist, errors: sum { $0.errors.load(ordering: .relaxed) } + failed.load(ordering: .relaxed),
            dropped: sum { $0.dropped.load(ordering: .relaxed) }, lags: sum { $0.lags.load(ordering: .relaxed) },
            clientCPUPercent: cpuPercent(cpu0, cpu1, seconds), serverCPUPercent: cpuPercent(server0, server1, seconds),
            serverCPUMicrosPerDelivery: (server0 != nil && server1 != nil && delivered > 0) ? Double(server1! - server0!) / Double(delivered) : nil,
            serverRSS: rss)
    }

    private func cpuPercent(_ a: UInt64?, _ b: UInt64?, _ seconds: Double) -> Double? {
        guard let a, let b else { return nil }
        return Double(b - a) / 1e6 / seconds * 100
    }

    func sum(_ value: (LoopStats) -> Int) -> Int {
        stats.reduce(0) { $0 + value($1) }
    }
    func totalDelivered() -> Int { sum { $0.delivered.load(ordering: .relaxed) } }
    func totalSent() -> Int { sum { $0.sent.load(ordering: .relaxed) } }
    func totalBytes() -> Int { sum { $0.bytes.load(ordering: .relaxed) } }

    private func sleepSeconds(_ seconds: Double, line: (Double) -> String) {
        let start = MonotonicClock.now()
        let end = start + UInt64(seconds * 1e9)
        var nextTick = start + 1_000_000_000
        while true {
            let now = MonotonicClock.now()
            if now >= end { break }
            let wake = min(end, nextTick)
            usleep(UInt32(max(1000, (wake - now) / 1000)))
            if MonotonicClock.now() >= nextTick {
                progress(line(Double(MonotonicClock.now() - start) / 1e9))
                nextTick += 1_000_000_000
            }
        }
    }

    private func progress(_ s: String) {
        guard !options.quiet else { return }
        let line = "\r\u{1B}[K[\(options.scenarioName) \(target.kind.rawValue)] " + s
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    private func finishProgress() {
        guard !options.quiet else { return }
        _ = "\n".withCString { write(2, $0, 1) }
    }

    private func shutdown() {
        group.stop()
        group.join()
    }
}

/// The figures of one run.
struct RunResult {
    var error: String?
    var seconds = 0.0
    var sent = 0
    var delivered = 0
    var expected = 0
    var deliveriesPerSecond = 0.0
    var megabytesPerSecond = 0.0
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var errors = 0
    var dropped = 0
    var lags = 0
    var clientCPUPercent: Double?
    var serverCPUPercent: Double?
    var serverCPUMicrosPerDelivery: Double?
    var serverRSS: UInt64?

    static func failed(_ message: String) -> RunResult {
        var r = RunResult()
        r.error = message
        return r
    }

    var reach: Double { expected > 0 ? Double(delivered) / Double(expected) : 0 }
}
