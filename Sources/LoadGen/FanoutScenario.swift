import ArgumentParser
import Glibc
import Reactor
import Framing

/// C pods × 1 publisher × S subscribers. Open loop at `--rate` frames/s per
/// pod (send times are the intended ones, so a stall shows as latency: no
/// coordinated omission), or `--max`: closed loop keeping `--window` frames
/// in flight per subscriber.
struct Fanout: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One publisher to many subscribers per pod.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Pods (channels).") var pods: Int = 1
    @Option(help: "Subscribers (browsers) per pod.") var subscribers: Int = 100
    @Option(help: "Frame size in bytes (type byte included).") var size: Int = 128
    @Option(help: "Frames per second per pod (open loop).") var rate: Double?
    @Flag(help: "Closed loop: as fast as the window allows.") var max = false
    @Option(help: "Frames in flight per subscriber (with --max).") var window: Int = 32

    func validate() throws {
        guard (rate != nil) != max else { throw ValidationError("give exactly one of --rate R or --max") }
        guard pods >= 1, subscribers >= 1, size >= StampedPayload.headerSize, window >= 1 else {
            throw ValidationError("pods, subscribers and window must be ≥ 1, size ≥ \(StampedPayload.headerSize)")
        }
    }

    func run() throws {
        let (pods, subscribers, size, rate, window) = (self.pods, self.subscribers, self.size, self.rate, max ? self.window : nil)
        try common.execute(scenario: "fanout", parameters: [
            ("pods", Int64(pods)), ("subscribers_per_pod", Int64(subscribers)), ("frame_size", Int64(size)),
            ("rate_per_pod", Int64(rate ?? 0)), ("window", Int64(window ?? 0)),
        ]) { harness in
            let holder = PodHolder()
            return harness.run(
                connections: harness.share(pods) * (subscribers + 1),
                setup: { loop, stats, h in
                    for p in h.indices(count: pods, loop: loop.index) {
                        holder.add(FanoutPod(index: p, subscribers: subscribers, size: size, rate: rate, window: window,
                                             loop: loop, stats: stats, harness: h), loop: loop.index)
                    }
                },
                start: { loop in holder.forEach(loop: loop.index) { (p: FanoutPod) in p.start() } },
                expectedDeliveries: { $0 * subscribers })
        }
    }
}

/// Scenario objects per loop, kept alive for the run. Each loop touches only its own list.
final class PodHolder: @unchecked Sendable {
    private var perLoop: [[AnyObject]] = Array(repeating: [], count: 256)
    func add(_ o: AnyObject, loop: Int) { perLoop[loop].append(o) }
    func forEach<T>(loop: Int, _ body: (T) -> Void) { for o in perLoop[loop] { if let t = o as? T { body(t) } } }
}

final class FanoutPod {
    let publisher: MessageEndpoint
    var subscribers: [MessageEndpoint] = []
    // Unmanaged: touched per delivery, and the stats outlive the run (no
    // retain/release per use, which `unowned(unsafe)` still costs).
    private let statsRef: Unmanaged<LoopStats>
    // The harness and loop outlive every pod (they stop only after the run).
    unowned(unsafe) let harness: Harness
    unowned(unsafe) let loop: EventLoop
    let subscriberCount: Int
    let rate: Double?
    let window: Int?
    private var payload: [UInt8]
    // Loop-confined counters touched per delivery: no runtime exclusivity checks.
    @exclusivity(unchecked) private var sent: UInt64 = 0
    /// Frames no longer in flight, over all subscribers: delivered, or
    /// skipped (dropped by a lagging relay). The sum of `nextSeq`.
    @exclusivity(unchecked) private var accounted: UInt64 = 0
    /// Per subscriber, the sequence number expected next (drops show as gaps).
    private let nextSeq: UnsafeMutablePointer<UInt64>
    /// Closed loop: `fill()` is due once `accounted` reaches this.
    @exclusivity(unchecked) private var refillAt: UInt64 = 0
    private var schedule: OpenLoopSchedule?
    private var blocked = false

    init(index: Int, subscribers: Int, size: Int, rate: Double?, window: Int?, loop: EventLoop, stats: LoopStats, harness: Harness) {
        statsRef = Unmanaged.passUnretained(stats)
        self.harness = harness
        self.loop = loop
        subscriberCount = subscribers
        self.rate = rate
        self.window = window
        payload = StampedPayload.make(size: size)
        nextSeq = .allocate(capacity: subscribers)
        nextSeq.initialize(repeating: 0, count: subscribers)
        if window == nil { refillAt = .max }
        // A pod name of this run only: never a pod (and replay ring) left by an earlier run.
        let pod = "loadgen-\(harness.runID)-pod-\(index)"
        do {
            publisher = try harness.target.publisher(pod: pod, index: index, on: loop)
        } catch {
            publisher = MessageEndpoint()
            harness.fail("publisher: \(error)")
            return
        }
        wire(publisher)
        publisher.onDrained = { [unowned self] in
            blocked = false
            if self.window != nil { fill() }
        }
        for s in 0..<subscribers {
            do {
                let e = try harness.target.subscriber(pod: pod, index: index * subscribers + s, on: loop, extraQuery: "&ext=1")
                wire(e)
                e.fanoutPod = Unmanaged.passUnretained(self)
                e.fanoutIndex = s
                self.subscribers.append(e)
            } catch {
                harness.fail("subscriber: \(error)")
            }
        }
    }

    private func wire(_ e: MessageEndpoint) {
        e.onReady = { [unowned self] in harness.ready.add(1, ordering: .relaxed) }
        e.onClosed = { [unowned self] why in
            harness.closed(why)
        }
    }

    func start() {
        if window != nil {
            fill()
        } else if let rate {
            schedule = OpenLoopSchedule(rate: rate, start: MonotonicClock.now())
            tick()
        }
    }

    private func send(stamp: UInt64) -> Bool {
        StampedPayload.stamp(&payload, nanos: stamp, seq: sent)
        let ok = payload.withUnsafeBytes { publisher.send($0) }
        if ok {
            sent &+= 1
            statsRef._withUnsafeGuaranteedRef { LoopStats.bump($0.sent, 1) }
        } else {
            blocked = true
        }
        return ok
    }

    /// Closed loop: up to `window` frames in flight per subscriber (on
    /// average). Refills in bursts once half the window has arrived, as a
    /// busy runner writes: trickling one frame per delivery would measure
    /// one frame per syscall, not the relay.
    private func fill() {
        guard let window, !blocked else { return }
        let limit = window * subscriberCount
        var inFlight = Int(sent) * subscriberCount - Int(accounted)
        guard inFlight <= limit / 2 else { return }
        while harness.running.load(ordering: .relaxed) && inFlight < limit {
            if !send(stamp: MonotonicClock.now()) { break }
            inFlight += subscriberCount
        }
        // Out now, not at the end of this turn: the turn may go on reading
        // hundreds of subscribers while the relay waits for the burst.
        publisher.flushNow()
        // In flight ≤ limit / 2 again once this many are accounted for.
        refillAt = UInt64(max(0, Int(sent) * subscriberCount - limit / 2))
    }

    /// Open loop: send what is due, then sleep until the next frame is due.
    private func tick() {
        guard harness.running.load(ordering: .relaxed), let schedule else { return }
        let now = MonotonicClock.now()
        let due = schedule.due(at: now)
        while sent < due && !blocked {
            if !send(stamp: schedule.intended(sent)) { break }
        }
        loop.schedule(afterNanoseconds: schedule.wait(sent: sent, now: now)) { [weak self] in self?.tick() }
    }

    func received(_ bytes: UnsafeRawBufferPointer, from s: Int, at now: UInt64) {
        guard let (stamp, seq) = StampedPayload.read(bytes) else {
            // The relay's Lagged notice (subscribers ask for extension frames).
            if bytes.first == RelayFrameType.lagged.rawValue {
                statsRef._withUnsafeGuaranteedRef { LoopStats.bump($0.lags, 1) }
            }
            return
        }
        // Older than expected: the catch-up after a lag replaying frames this
        // subscriber already has. Not a delivery.
        let expected = nextSeq[s]
        guard seq < sent, seq >= expected else { return }
        accounted &+= seq &+ 1 &- expected
        statsRef._withUnsafeGuaranteedRef { stats in
            stats.recordDelivery(bytes: bytes.count, stampNanos: stamp, now: now)
            if seq > expected { stats.dropped.add(Int(seq - expected), ordering: .relaxed) }
        }
        nextSeq[s] = seq &+ 1
        if accounted >= refillAt { fill() }
    }

    deinit { nextSeq.deallocate() }
}
