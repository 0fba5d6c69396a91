import Glibc
import Synchronization

/// A block of bytes that slices share without copying.
///
/// Ownership: counting is loop-local. Every `SlabSlice` that is kept counts
/// once in `refs`, a plain `Int` touched only by the loop that owns the slab;
/// together those slices hold a single ARC reference, dropped when `refs`
/// reaches zero. Hot paths therefore pay a plain increment per subscriber,
/// never an atomic. A slab never crosses loops: the relay hands each
/// connection to its pod's loop before its first WebSocket byte, so a pod's
/// frames and every queue holding them live on one loop.
public final class Slab {
    /// First byte of the block.
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    /// Bytes written so far; the next write lands at `base + used`.
    /// (Loop-confined like `refs`: no runtime exclusivity checks.)
    @exclusivity(unchecked) public var used: Int = 0
    /// Live counted references (slices and the creator's handle). Touched
    /// once per queued slice: a plain increment, no runtime exclusivity check
    /// (which cost a quarter of the relay's user time in fan-out).
    @exclusivity(unchecked) public private(set) var refs: Int = 1

    private init(capacity: Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
        self.capacity = capacity
    }

    deinit { base.deallocate() }

    /// Slabs allocated so far in this process, for
    /// /metrics and the zero-copy test: fan-out must not grow it per
    /// subscriber. One relaxed atomic add per slab, never per slice.
    public static let allocations = Atomic<Int>(0)

    /// A new slab with one counted reference (the caller's, to be dropped
    /// with `release()`). The counted references hold one ARC reference
    /// between them, so the slab outlives the caller's variable as long as
    /// any slice counts.
    public static func allocate(capacity: Int) -> Slab {
        allocations.add(1, ordering: .relaxed)
        return Unmanaged.passRetained(Slab(capacity: capacity)).takeUnretainedValue()  // the +1 is balanced by the last release()
    }

    /// A slab holding a copy of `bytes`; one counted reference (the caller's).
    public static func copying(_ bytes: UnsafeRawBufferPointer) -> Slab {
        let s = allocate(capacity: bytes.count)
        if let src = bytes.baseAddress, bytes.count > 0 {
            s.base.copyMemory(from: src, byteCount: bytes.count)
        }
        s.used = bytes.count
        return s
    }

    /// A slab holding a copy of `bytes`; one counted reference (the caller's).
    public static func copying(_ bytes: [UInt8]) -> Slab {
        bytes.withUnsafeBytes { copying($0) }
    }

    /// Count one more reference. Loop-local: never call from another thread.
    @inline(__always)
    public func retain() { refs &+= 1 }

    /// Drop one counted reference; the last one frees the slab.
    @inline(__always)
    public func release() {
        refs &-= 1
        if refs == 0 { Unmanaged.passUnretained(self).release() }
    }

    /// The whole written region as a slice (not counted: retain to keep it).
    public var written: SlabSlice {
        SlabSlice(slab: Unmanaged.passUnretained(self), start: UnsafeRawPointer(base), count: used)
    }
}

/// A run of bytes inside a slab. A plain value: copying it does not count a
/// reference; `retain()` / `release()` do. Whoever stores a slice beyond the
/// call that handed it over must retain it, and release it exactly once.
public struct SlabSlice {
    public let slab: Unmanaged<Slab>
    public var start: UnsafeRawPointer
    public var count: Int

    @inline(__always)
    public init(slab: Unmanaged<Slab>, start: UnsafeRawPointer, count: Int) {
        self.slab = slab
        self.start = start
        self.count = count
    }

    @inline(__always)
    public func retain() { slab._withUnsafeGuaranteedRef { $0.retain() } }

    @inline(__always)
    public func release() { slab._withUnsafeGuaranteedRef { $0.release() } }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: start, count: count) }

    /// A sub-range (not counted).
    @inline(__always)
    public func slice(from offset: Int, count: Int) -> SlabSlice {
        precondition(offset >= 0 && count >= 0 && offset + count <= self.count, "slice out of range")
        return SlabSlice(slab: slab, start: start + offset, count: count)
    }
}
