import Synchronization
import Reactor

/// Counters of one loop, written by that loop (relaxed atomics: no
/// contention, one add per frame, never per subscriber), read by /metrics
/// and /stats from any loop. Exception: `authFailures` lives in loop 0's
/// counters and any loop that refuses an upgrade adds to it (rare, and
/// atomic).
final class RelayCounters: Sendable {
    let runners = Atomic<Int>(0)
    let browsers = Atomic<Int>(0)
    let pods = Atomic<Int>(0)
    /// Mirrors of pods homed on other loops (browser placement `accept`).
    let mirrors = Atomic<Int>(0)
    let activeChannels = Atomic<Int>(0)
    let totalSubscribers = Atomic<Int>(0)
    let pendingPublishers = Atomic<Int>(0)
    let pendingSubscribers = Atomic<Int>(0)
    let framesIn = Atomic<Int>(0)
    let bytesIn = Atomic<Int>(0)
    let deliveries = Atomic<Int>(0)
    let bytesOut = Atomic<Int>(0)
    let refusedInput = Atomic<Int>(0)
    let droppedFrames = Atomic<Int>(0)
    let lags = Atomic<Int>(0)
    let authFailures = Atomic<Int>(0)
    /// Close codes sent or seen, as (code, count) for the few codes that occur.
    let closes = Locked<[UInt16: Int]>([:])

    @inline(__always)
    func add(_ counter: borrowing Atomic<Int>, _ n: Int) {
        counter.add(n, ordering: .relaxed)
    }

    func countClose(_ code: UInt16) {
        closes.withLock { $0[code, default: 0] += 1 }
    }
}
