/// A rate bound on a clock the caller passes in (nanoseconds): `burst`
/// tokens, refilled at `perSecond`. Tested with exact times, no sleeping.
public struct TokenBucket: Sendable {
    public let burst: Int
    public let perSecond: Int
    private var tokens: Int
    private var last: UInt64?

    public init(burst: Int, perSecond: Int) {
        self.burst = burst
        self.perSecond = perSecond
        tokens = burst
    }

    /// Takes one token; false when none is left.
    public mutating func take(now: UInt64) -> Bool {
        guard let last else {
            self.last = now
            return spend()
        }
        if now > last && perSecond > 0 {
            let interval = max(1, 1_000_000_000 / UInt64(perSecond))
            let earned = (now - last) / interval
            if earned > 0 {
                if UInt64(burst - tokens) <= earned {
                    // Full again: time beyond the burst is not saved up.
                    tokens = burst
                    self.last = now
                } else {
                    tokens += Int(earned)
                    self.last = last + earned * interval
                }
            }
        }
        return spend()
    }

    private mutating func spend() -> Bool {
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
