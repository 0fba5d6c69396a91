import Glibc
import CReactor

/// What `OutboundQueue.flush` achieved.
public enum FlushResult: Equatable, Sendable {
    /// Everything queued was written.
    case drained
    /// The socket buffer is full; wait for writability (arm EPOLLOUT).
    case wouldBlock
    /// The write failed (e.g. EPIPE, ECONNRESET).
    case failed(SystemError)
}

/// The bytes waiting to leave one connection: a ring of slab slices, bounded
/// in bytes, drained with one `writev` of up to `IOV_MAX` iovecs at a time
/// (slices that continue one another in memory share an iovec).
///
/// Ownership: every queued slice holds one counted slab reference, released
/// once its last byte is written (or when the queue is cleared).
/// The bound: once `limit` bytes wait behind the entry being written,
/// `enqueue` refuses further slices and returns false (so the queue holds at
/// most the entry in progress — one slice, or a coalesced run of at most
/// `maxRun` bytes — + `limit` + one slice), leaving the decision (drop, lag, pause,
/// close) to the connection's owner; `force` queues anyway (for small control
/// frames whose loss would break the protocol). The ring is allocated on
/// first use (2 entries, 48 bytes, doubling as needed) and freed whenever
/// the queue drains: an idle connection holds none (keeping small rings cost
/// ~90 bytes per idle browser at 15,000), and a busy one pays a small
/// malloc per `writev`, which is lost in the syscall's cost.
public struct OutboundQueue: ~Copyable {
    /// One queued slice, or a run of coalesced ones, with the owner's tag.
    struct Entry {
        var slice: SlabSlice
        /// The owner's label (e.g. what kind of message this is), so it can
        /// drop entries by kind without parsing bytes.
        let tag: UInt32
        /// The owner's messages in this entry (1 unless a run was queued or
        /// `coalesce` joined more).
        var slices: UInt32
    }
    private var ring: UnsafeMutablePointer<Entry>?
    private(set) var capacity = 0      // ring entries: a power of two, or 0
    private var head = 0
    public private(set) var count = 0
    public private(set) var bytes = 0
    public var limit: Int
    /// The last entry may grow by coalescing (it was queued with `coalesce`).
    private var tailCoalesces = false
    /// Some of the first entry has been written: it must not be dropped.
    private var headStarted = false

    /// Largest run coalescing builds: the bound below counts the run being
    /// written as "in progress", so runs are kept no longer than a frame
    /// arena's chunk.
    public static let maxRun = 64 * 1024

    public init(limit: Int) {
        self.limit = limit
    }

    deinit {
        for i in 0..<count { ring![(head + i) & (capacity - 1)].slice.release() }
        ring?.deallocate()
    }

    public var isEmpty: Bool { count == 0 }

    /// Queues `slice` (retaining it) unless that would pass `limit`.
    /// `tag` is the owner's label for it (see `removeAll(where:)`).
    ///
    /// `coalesce`: when the last entry was queued with `coalesce` and the
    /// same tag, lies in the same slab and ends where `slice` starts (a
    /// pod's frames, built one after another in its arena), `slice` extends
    /// that entry instead of taking one: no count, no ring slot, one iovec.
    /// `messages`: how many of the owner's messages `slice` holds (a run of
    /// frames laid end to end), reported back by `removeAll(where:)`.
    @inline(__always)
    public mutating func enqueue(_ slice: SlabSlice, tag: UInt32 = 0, messages: UInt32 = 1, force: Bool = false, coalesce: Bool = false) -> Bool {
        // The bound applies to what waits behind the slice being written,
        // and is checked before adding: a frame is never refused for its
        // size alone (the message size limit bounds that), and a peer that
        // reads promptly is not failed by one large frame in progress.
        // `bytes >= limit` first: below it the bound cannot be reached, and
        // the head entry (another cache line per subscriber) is not touched.
        if !force && bytes >= limit && count > 0 && bytes - ring![head].slice.count >= limit { return false }
        if coalesce && tailCoalesces {
            let tail = ring! + ((head + count - 1) & (capacity - 1))
            if tail.pointee.tag == tag
                && tail.pointee.slice.slab.toOpaque() == slice.slab.toOpaque()
                && tail.pointee.slice.start + tail.pointee.slice.count == slice.start
                && tail.pointee.slice.count + slice.count <= Self.maxRun {
                tail.pointee.slice.count += slice.count
                tail.pointee.slices += messages
                bytes += slice.count
                return true
            }
        }
        if count == capacity { grow() }
        slice.retain()
        (ring! + ((head + count) & (capacity - 1))).initialize(to: Entry(slice: slice, tag: tag, slices: messages))
        count += 1
        bytes += slice.count
        tailCoalesces = coalesce
        return true
    }

    private mutating func grow() {
        let newCapacity = max(2, capacity * 2)
        let fresh = UnsafeMutablePointer<Entry>.allocate(capacity: newCapacity)
        if let old = ring {
            for i in 0..<count {
                (fresh + i).initialize(to: old[(head + i) & (capacity - 1)])
            }
            old.deallocate()
        }
        ring = fresh
        capacity = newCapacity
        head = 0
    }

    /// Releases every queued slice and the ring.
    public mutating func removeAll() {
        while count > 0 {
            ring![head].slice.release()
            head = (head + 1) & (capacity - 1)
            count -= 1
        }
        bytes = 0
        tailCoalesces = false
        headStarted = false
        freeRing()
    }

    private mutating func freeRing() {
        ring?.deallocate()
        ring = nil
        capacity = 0
        head = 0
    }

    /// Writes as much as the socket takes, `IOV_MAX` slices per `writev`.
    /// `iovecs` is scratch space for at least `IOV_MAX` entries (one per loop).
    public mutating func flush(
        iovecs: UnsafeMutablePointer<iovec>,
        write: (UnsafePointer<iovec>, Int32) -> IOResult
    ) -> FlushResult {
        while count > 0 {
            // Slices that continue one another in memory (a pod's frames,
            // built one after the other in its arena) go out as one iovec:
            // the kernel's cost is per iovec as much as per byte, and one
            // `writev` then carries more than IOV_MAX small frames.
            var n = 0
            var requested = 0
            var i = 0
            while i < count {
                let s = ring![(head + i) & (capacity - 1)].slice
                if n > 0, iovecs[n - 1].iov_base! + iovecs[n - 1].iov_len == UnsafeMutableRawPointer(mutating: s.start) {
                    iovecs[n - 1].iov_len += s.count
                } else {
                    if n == Int(CREACTOR_IOV_MAX) { break }
                    iovecs[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: s.start), iov_len: s.count)
                    n += 1
                }
                requested += s.count
                i += 1
            }
            switch write(iovecs, Int32(n)) {
            case .bytes(let written):
                consume(written)
                if written < requested { return .wouldBlock }
            case .wouldBlock:
                return .wouldBlock
            case .eof:
                return .failed(SystemError("writev", code: EPIPE))
            case .error(let e):
                return .failed(e)
            }
        }
        freeRing()
        return .drained
    }

    /// Hands the first `max` bytes (or all) to `take` as uncounted slices,
    /// in order (retain one to keep it), then drops them from the queue:
    /// how a queue feeds another one by reference (an HTTP/2 stream's DATA
    /// into its connection's queue) without copying. Returns the bytes moved.
    public mutating func transfer(upTo max: Int, _ take: (SlabSlice) -> Void) -> Int {
        var moved = 0
        var i = 0
        while i < count && moved < max {
            var s = ring![(head + i) & (capacity - 1)].slice
            if s.count > max - moved { s.count = max - moved }
            take(s)
            moved += s.count
            i += 1
        }
        consume(moved)
        if count == 0 { freeRing() }
        return moved
    }

    /// Drops `written` bytes from the front, releasing finished slices.
    private mutating func consume(_ written: Int) {
        var left = written
        bytes -= written
        while left > 0 {
            let slot = ring! + head
            if slot.pointee.slice.count <= left {
                left -= slot.pointee.slice.count
                slot.pointee.slice.release()
                head = (head + 1) & (capacity - 1)
                count -= 1
                headStarted = false
                if count == 0 { tailCoalesces = false }
            } else {
                slot.pointee.slice.start += left
                slot.pointee.slice.count -= left
                headStarted = true
                left = 0
            }
        }
    }

    /// Removes queued entries for which `drop(tag, slices)` returns true,
    /// except the first one once part of it is written (a frame must never
    /// be cut). `slices` is how many slices a coalesced entry holds; the
    /// decision is for all of them. Returns how many slices were removed.
    public mutating func removeAll(where drop: (_ tag: UInt32, _ slices: Int) -> Bool) -> Int {
        guard count > 0 else { return 0 }
        var kept = 0
        var removed = 0
        for i in 0..<count {
            let e = ring![(head + i) & (capacity - 1)]
            if !(headStarted && i == 0) && drop(e.tag, Int(e.slices)) {
                bytes -= e.slice.count
                e.slice.release()
                removed += Int(e.slices)
            } else {
                ring![(head + kept) & (capacity - 1)] = e
                kept += 1
            }
        }
        count = kept
        tailCoalesces = false
        if count == 0 { freeRing() }
        return removed
    }
}
