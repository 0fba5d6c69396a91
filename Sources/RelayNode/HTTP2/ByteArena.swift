import Reactor

/// Small bytes a connection writes around shared payloads (HTTP/2 DATA
/// frame headers, and the other frames nghttp2 makes), carved out of 16 KiB
/// slabs instead of one allocation each.
///
/// Ownership: the arena holds one count on its current slab; a slice it
/// hands out is uncounted, so the caller queues it (which retains) before
/// the arena can move on. A slab is freed when the arena has moved on and
/// the last queued slice of it has been written.
struct ByteArena: ~Copyable {
    static let chunkSize = 16 * 1024
    /// Largest request; bigger bytes get a slab of their own (`Slab.copying`).
    static let maxReserve = chunkSize / 4
    private var chunk: Slab?

    deinit { chunk?.release() }

    /// Room for `count` (≤ `maxReserve`) bytes: write them at `start`, queue `slice`.
    mutating func reserve(_ count: Int) -> (start: UnsafeMutableRawPointer, slice: SlabSlice) {
        precondition(count <= Self.maxReserve)
        if chunk == nil || chunk!.capacity - chunk!.used < count {
            chunk?.release()
            chunk = Slab.allocate(capacity: Self.chunkSize)
        }
        let slab = chunk!
        let start = slab.base + slab.used
        slab.used += count
        return (start, SlabSlice(slab: Unmanaged.passUnretained(slab), start: UnsafeRawPointer(start), count: count))
    }
}
