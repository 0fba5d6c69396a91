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
        if let last, now > last, perSecond > 0 {
            let earned = Int(min((now - last) / (1_000_000_000 / UInt64(perSecond)), UInt64(burst)))
            if earned > 0 {
                tokens = min(burst, tokens + earned)
                self.last = last + UInt64(earned) * (1_000_000_000 / UInt64(perSecond))
            }
        } else if last == nil {
            last = now
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
