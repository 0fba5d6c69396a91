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

/// Reads the relay type of a server frame built by this process.
enum ServerFrameInspector {
    /// The `[type]` byte of an unmasked binary frame's payload, if any.
    static func relayType(_ frame: SlabSlice) -> UInt8? {
        guard frame.count >= 3 else { return nil }
        let p = frame.start.assumingMemoryBound(to: UInt8.self)
        guard p[0] & 0x0F == WebSocketOpcode.binary.rawValue else { return nil }   // not a relay frame (Close, Pong…)
        let len = p[1] & 0x7F
        let headerSize = len < 126 ? 2 : (len == 126 ? 4 : 10)
        guard frame.count > headerSize else { return nil }
        return p[headerSize]
    }

    /// How many whole server frames lie end to end in `run` (a queue entry
    /// may be several coalesced frames).
    static func frameCount(_ run: SlabSlice) -> Int {
        let p = run.start.assumingMemoryBound(to: UInt8.self)
        var offset = 0, frames = 0
        while run.count - offset >= 2 {
            let len = p[offset + 1] & 0x7F
            var payload = Int(len), headerSize = 2
            if len == 126 {
                payload = Int(p[offset + 2]) << 8 | Int(p[offset + 3])
                headerSize = 4
            } else if len == 127 {
                payload = 0
                for i in 0..<8 { payload = payload << 8 | Int(p[offset + 2 + i]) }
                headerSize = 10
            }
            offset += headerSize + payload
            frames += 1
        }
        return frames
    }
}
