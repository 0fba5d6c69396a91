import Reactor
import Framing

/// Where a pod's outgoing frames are built: header + payload copied once
/// into shared chunks, then queued by reference to every browser and kept by
/// reference in the replay ring.
///
/// Why one copy and not a slice of the read slab: a read slab is shared by
/// every connection of the loop, so a ring entry pointing into it would pin
/// 256 KiB of other connections' bytes for as long as a quiet pod keeps it.
/// Copying into the pod's own chunks makes the ring's memory what the ring
/// counts; it costs one memcpy per frame and nothing per subscriber.
struct FrameArena: ~Copyable {
    static let chunkSize = 64 * 1024
    private var chunk: Slab?

    deinit { chunk?.release() }

    /// A binary server frame carrying `payload`, counted once for the
    /// caller: release it after queuing / storing it (which retain their own).
    mutating func frame(payload: UnsafeRawBufferPointer) -> SlabSlice {
        let headerSize = WebSocketEncoder.serverHeaderSize(payloadLength: payload.count)
        let size = headerSize + payload.count
        let slab: Slab
        if size > Self.chunkSize / 4 {
            // Large frames get a slab of their own: no waste at chunk ends.
            slab = Slab.allocate(capacity: size)      // its one count is the caller's
        } else {
            if chunk == nil || chunk!.capacity - chunk!.used < size {
                chunk?.release()
                chunk = Slab.allocate(capacity: Self.chunkSize)
            }
            slab = chunk!
            slab.retain()                              // the caller's count
        }
        let start = slab.base + slab.used
        WebSocketEncoder.writeServerHeader(opcode: .binary, payloadLength: payload.count, to: start)
        if payload.count > 0 { (start + headerSize).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        slab.used += size
        return SlabSlice(slab: Unmanaged.passUnretained(slab), start: UnsafeRawPointer(start), count: size)
    }
}
