/// A clock that moves only when told to: an event loop made with one reads
/// its time here instead of CLOCK_MONOTONIC, so tests drive timers by hand
/// (see `EmbeddedEventLoop`). Nanoseconds, like `MonotonicClock`.
///
/// Confined to the loop's thread like the rest of the loop's state.
public final class VirtualClock: @unchecked Sendable {
    public internal(set) var now: UInt64

    public init(start: UInt64 = 1_000_000_000) {
        now = start
    }
}
