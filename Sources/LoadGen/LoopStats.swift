import Histogram
import Synchronization
import Reactor

/// What the clients of one loop measured. Counters are relaxed atomics so
/// the progress line can read them while the loop runs (one uncontended add
/// per delivery); the histogram is read only after the loops stop.
final class LoopStats: @unchecked Sendable {
    let sent = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let lags = Atomic<Int>(0)
    /// Latency in microseconds. Loop thread only while running.
    @exclusivity(unchecked) private var recorder = LatencyRecorder()
    /// The latencies recorded so far; read after the loop stopped.
    var latency: Histogram<UInt64> {
        var h = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        recorder.fold(into: &h)
        return h
    }
    /// Set when measurement starts (warm-up deliveries are not recorded).
    let measuring = Atomic<Bool>(false)

    @inline(__always)
    func recordDelivery(bytes n: Int, stampNanos: UInt64, now: UInt64) {
        Self.bump(delivered, 1)
        Self.bump(bytes, n)
        if measuring.load(ordering: .relaxed) {
            recorder.record(now > stampNanos ? (now - stampNanos) / 1000 : 0)
        }
    }

    /// Adds to a counter only this loop's thread writes: a plain load and
    /// store (no locked read-modify-write per delivery); the progress line
    /// on another thread still reads a whole value.
    @inline(__always)
    static func bump(_ counter: borrowing Atomic<Int>, _ n: Int) {
        counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
}

/// A payload that carries its send time and sequence number:
/// `[type][stamp u64 LE][seq u64 LE][padding]` (type 0x02 Output, or 0x03 Input).
enum StampedPayload {
    static let headerSize = 17

    static func make(size: Int, type: UInt8 = 0x02) -> [UInt8] {
        var p = [UInt8](repeating: 0x2E, count: max(size, headerSize))
        p[0] = type
        return p
    }

    @inline(__always)
    static func stamp(_ p: inout [UInt8], nanos: UInt64, seq: UInt64) {
        p.withUnsafeMutableBytes { b in
            b.storeBytes(of: nanos.littleEndian, toByteOffset: 1, as: UInt64.self)
            b.storeBytes(of: seq.littleEndian, toByteOffset: 9, as: UInt64.self)
        }
    }

    @inline(__always)
    static func read(_ p: UnsafeRawBufferPointer) -> (nanos: UInt64, seq: UInt64)? {
        guard p.count >= headerSize, p[0] == 0x02 || p[0] == 0x03 else { return nil }
        return (UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
                UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 9, as: UInt64.self)))
    }
}
