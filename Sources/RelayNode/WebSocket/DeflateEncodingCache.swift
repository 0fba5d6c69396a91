import Glibc
import Synchronization
import Reactor
import Framing

/// permessage-deflate for a loop's WebSockets: the loop's codec, and the
/// compressed form of the pod frames being fanned out, made once per loop
/// and shared by reference by every subscriber that negotiated the
/// extension (each message compressed on its own: no context takeover, so
/// one compressed message is valid for every subscriber).
///
/// A run of server frames becomes one slab of frames: each payload of at
/// least `minimumSize` bytes compressed (RSV1 set), smaller ones copied as
/// they are (RSV1 clear). The cache holds one count on the run it encoded
/// (so its address cannot be reused while it is the key) and one on the
/// encoding, until the next run. Loop-confined, but for the counters.
final class DeflateEncodingCache {
    let codec: PerMessageDeflateCodec
    let minimumSize: Int
    let counters: CompressionCounters
    private var source: SlabSlice?
    private var encoded: SlabSlice?

    init(minimumSize: Int, counters: CompressionCounters, level: Int32 = 6) {
        codec = PerMessageDeflateCodec(level: level)
        self.minimumSize = minimumSize
        self.counters = counters
    }

    deinit {
        source?.release()
        encoded?.release()
    }

    /// `run`'s frames as sent to a compressing subscriber, uncounted: valid
    /// until the next call; queue it to keep it.
    func encoding(of run: SlabSlice) -> SlabSlice {
        if let s = source, let e = encoded, s.start == run.start, s.count == run.count,
           s.slab.toOpaque() == run.slab.toOpaque() {
            return e
        }
        var bound = 0
        var offset = 0
        while offset < run.count {
            let (header, length) = GRPCStream.serverFrame(run.start + offset)
            bound += length >= minimumSize ? WebSocketEncoder.maxServerHeaderSize + codec.compressBound(length) : header + length
            offset += header + length
        }
        let slab = Slab.allocate(capacity: bound)
        offset = 0
        while offset < run.count {
            let (header, length) = GRPCStream.serverFrame(run.start + offset)
            let payload = UnsafeRawBufferPointer(start: run.start + offset + header, count: length)
            let first = run.start.load(fromByteOffset: offset, as: UInt8.self)
            slab.used += write(payload, opcode: WebSocketOpcode(rawValue: first & 0x0F) ?? .binary, to: slab.base + slab.used)
            offset += header + length
        }
        source?.release()
        encoded?.release()
        run.retain()
        source = run
        encoded = slab.written          // the slab's one count is the cache's
        return slab.written
    }

    /// One server frame for `payload` at `out` (room for the header and
    /// `compressBound`): compressed when it is large enough. Returns its size.
    func write(_ payload: UnsafeRawBufferPointer, opcode: WebSocketOpcode, to out: UnsafeMutableRawPointer) -> Int {
        guard payload.count >= minimumSize else {
            let h = WebSocketEncoder.serverHeaderSize(payloadLength: payload.count)
            WebSocketEncoder.writeServerHeader(opcode: opcode, payloadLength: payload.count, to: out)
            if payload.count > 0 { (out + h).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
            return h + payload.count
        }
        // Compress after the largest header, then move the header up to it.
        let room = WebSocketEncoder.maxServerHeaderSize
        let n = codec.compress(payload, to: out + room, capacity: codec.compressBound(payload.count))
        let h = WebSocketEncoder.serverHeaderSize(payloadLength: n)
        if h < room { memmove(out + h, out + room, n) }
        WebSocketEncoder.writeServerHeader(opcode: opcode, payloadLength: n, to: out)
        out.storeBytes(of: out.load(as: UInt8.self) | 0x40, as: UInt8.self)      // RSV1: compressed
        counters.compressions.add(1, ordering: .relaxed)
        counters.bytesIn.add(payload.count, ordering: .relaxed)
        counters.bytesOut.add(n, ordering: .relaxed)
        return h + n
    }

    /// A slab holding one (maybe compressed) frame for `payload` (the
    /// caller's count: release it once queued).
    func frame(_ payload: UnsafeRawBufferPointer, opcode: WebSocketOpcode) -> Slab {
        let slab = Slab.allocate(capacity: WebSocketEncoder.maxServerHeaderSize + max(payload.count, codec.compressBound(payload.count)))
        slab.used = write(payload, opcode: opcode, to: slab.base)
        return slab
    }
}

/// What compression did, summed over the loops (for /stats and /metrics).
final class CompressionCounters: Sendable {
    /// Connections that negotiated permessage-deflate, open now.
    let connections = Atomic<Int>(0)
    /// Messages compressed (once per message per loop, not per subscriber).
    let compressions = Atomic<Int>(0)
    /// Bytes before and after, over those messages.
    let bytesIn = Atomic<Int>(0)
    let bytesOut = Atomic<Int>(0)
}
