/// Open-loop sending at a fixed rate (no coordinated omission): frame k is
/// due at `start + k / rate` and is stamped with that time, whenever it
/// actually leaves, so a stall shows as latency. Between sends the sender
/// sleeps until the next frame is due, but at least `minimumTick` (fast rates
/// go out in bursts, at most 10,000 per second): a coarser tick would itself
/// be measured as latency, frames waiting for it after their time.
struct OpenLoopSchedule {
    let rate: Double            // frames per second
    let start: UInt64           // MonotonicClock nanoseconds
    static let minimumTick: UInt64 = 100_000

    /// How many frames are due by `now` (frame 0 at once).
    func due(at now: UInt64) -> UInt64 { UInt64(Double(now &- start) * rate / 1e9) + 1 }

    /// When frame `k` was due: its stamp.
    func intended(_ k: UInt64) -> UInt64 { start + UInt64(Double(k) * 1e9 / rate) }

    /// Nanoseconds to sleep with `sent` frames out.
    func wait(sent: UInt64, now: UInt64) -> UInt64 {
        let next = intended(sent)
        return max(next > now ? next - now : 0, Self.minimumTick)
    }
}
