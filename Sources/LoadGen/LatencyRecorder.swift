import Histogram

/// Per-delivery latency counts in a flat array: one shift, one compare and
/// an increment per value, inlined into the receive path (the HDR
/// histogram's record is a few calls and a uniqueness check per value).
/// Buckets are log-linear with 1,024 steps per power of two (about 0.1%,
/// the HDR histogram's three significant digits); `fold(into:)` hands the
/// counts over after the run. Values in microseconds, up to 2^27 µs
/// (134 s; larger ones are counted there). Loop-confined.
struct LatencyRecorder: ~Copyable {
    static let linear = 2048                     // values below are their own bucket
    static let maxShift = 16                     // 2^(11+16) µs ≈ 134 s
    static let bucketCount = linear + maxShift * 1024
    private let counts: UnsafeMutablePointer<UInt64>

    init() {
        counts = .allocate(capacity: Self.bucketCount)
        counts.initialize(repeating: 0, count: Self.bucketCount)
    }

    deinit { counts.deallocate() }

    @inline(__always)
    static func index(_ value: UInt64) -> Int {
        if value < UInt64(linear) { return Int(value) }
        // value >> shift lies in 1024..<2048.
        let shift = min(63 - value.leadingZeroBitCount - 10, maxShift)
        let step = min(Int(value >> UInt64(shift)), 2047) - 1024
        return linear + (shift - 1) * 1024 + step
    }

    /// The smallest value of bucket `index`.
    static func value(at index: Int) -> UInt64 {
        if index < linear { return UInt64(index) }
        let shift = (index - linear) / 1024 + 1
        return UInt64(1024 + (index - linear) % 1024) << UInt64(shift)
    }

    @inline(__always)
    func record(_ value: UInt64) {
        counts[Self.index(value)] &+= 1
    }

    /// Adds every count to `histogram`, at its bucket's smallest value.
    func fold(into histogram: inout Histogram<UInt64>) {
        for i in 0..<Self.bucketCount where counts[i] > 0 {
            _ = histogram.record(Self.value(at: i), count: counts[i])
        }
    }
}
