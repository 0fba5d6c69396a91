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
/// they are (RSV1 clear). Encodings are kept, bounded, beside the runs they
/// came from (each holding a count on its run, so the run's address cannot
/// be reused while it is a key): a pod's ring sent again to an attaching or
/// resuming browser is not compressed again. Loop-confined, but for the
/// counters.
final class DeflateEncodingCache {
    let codec: PerMessageDeflateCodec
    let minimumSize: Int
    let counters: CompressionCounters
    /// The most recent encoding (the fan-out hands every subscriber the
    /// same run in a row: no hashing on that path).
    private var lastSource: SlabSlice?
    private var lastEncoded: SlabSlice?
    /// Earlier encodings, so that a pod's replay ring sent again (instant
    /// attach, resume, catch-up after a lag) is not compressed again: at
    /// most `keptBytes` of encodings, the oldest dropped first.
    private var kept: [Key: SlabSlice] = [:]
    private var order: [Key] = []
    private var orderHead = 0
    private(set) var keptTotal = 0
    let keptBytes: Int
    /// Encodings kept past the next call (tests).
    var keptCount: Int { kept.count }

    /// A run by its bytes' address and length; its source is held (counted)
    /// while it is a key, so the address cannot be reused meanwhile.
    private struct Key: Hashable {
        let start: UnsafeRawPointer
        let count: Int
        let source: SlabSlice

        static func == (a: Key, b: Key) -> Bool { a.start == b.start && a.count == b.count }
        func hash(into h: inout Hasher) {
            h.combine(start)
            h.combine(count)
        }
    }

    /// `keptBytes`: how much is kept for runs sent again (the encodings
    /// and the runs they hold on to: a replay ring's worth).
    init(minimumSize: Int, counters: CompressionCounters, keptBytes: Int = 1 << 20, level: Int32 = 6) {
        codec = PerMessageDeflateCodec(level: level)
        self.minimumSize = minimumSize
        self.counters = counters
        self.keptBytes = keptBytes
    }

    deinit {
        lastSource?.release()
        lastEncoded?.release()
        for (k, e) in kept {
            k.source.release()
            e.release()
        }
    }

    /// `run`'s frames as sent to a compressing subscriber, uncounted: valid
    /// until the next call; queue it to keep it. Only frames a pod can send
    /// again (`keep`: replayable frames and snapshots) are kept past the next
    /// call; notices are not.
    func encoding(of run: SlabSlice, keep keepIt: Bool = true) -> SlabSlice {
        if let s = lastSource, let e = lastEncoded, s.start == run.start, s.count == run.count {
            return e
        }
        let probe = Key(start: run.start, count: run.count, source: run)
        let encoded: SlabSlice
        var fresh = false               // holds encode()'s count, not kept
        if let e = kept[probe] {
            encoded = e
        } else {
            encoded = encode(run)
            if keepIt { keep(run, encoded) } else { fresh = true }
        }
        lastSource?.release()
        lastEncoded?.release()
        run.retain()
        encoded.retain()
        lastSource = run
        lastEncoded = encoded
        if fresh { encoded.release() }
        return encoded
    }

    /// Keeps `encoded` (one count, this call's) for `run`, dropping the
    /// oldest encodings past `keptBytes`.
    private func keep(_ run: SlabSlice, _ encoded: SlabSlice) {
        run.retain()
        let key = Key(start: run.start, count: run.count, source: run)
        kept[key] = encoded
        order.append(key)
        // What really stays allocated counts: the encoding's slab, and the
        // whole buffer the run lies in (a pod's 64 KiB arena chunk, counted
        // once however many kept runs lie in it), which the kept count holds
        // on to. So the bound is memory, not bytes of frames, however many
        // pods come and go.
        keptTotal += Self.footprint(encoded) + pin(run)
        while keptTotal > keptBytes && orderHead < order.count - 1 {
            let old = order[orderHead]
            orderHead += 1
            if let e = kept.removeValue(forKey: old) {
                keptTotal -= Self.footprint(e) + unpin(old.source)
                e.release()
                old.source.release()
            }
        }
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    /// Kept runs per source slab: a slab's capacity counts once.
    private var pins: [UnsafeMutableRawPointer: Int] = [:]

    /// Bytes newly held by keeping a run in `s`'s slab (its capacity the first time).
    private func pin(_ s: SlabSlice) -> Int {
        let id = s.slab.toOpaque()
        pins[id, default: 0] += 1
        return pins[id] == 1 ? Self.footprint(s) : 0
    }

    private func unpin(_ s: SlabSlice) -> Int {
        let id = s.slab.toOpaque()
        guard let n = pins[id] else { return 0 }
        if n > 1 {
            pins[id] = n - 1
            return 0
        }
        pins[id] = nil
        return Self.footprint(s)
    }

    /// The allocation a slice keeps alive (its slab's capacity, at least its bytes).
    static func footprint(_ s: SlabSlice) -> Int {
        max(s.count, s.slab._withUnsafeGuaranteedRef { $0.capacity })
    }

    private func encode(_ run: SlabSlice) -> SlabSlice {
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
        return slab.written          // the slab's one count is the caller's
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
