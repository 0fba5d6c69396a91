import Reactor
import Framing

/// The gRPC encoding of the pod frames being fanned out, made once per loop
/// and shared by every gRPC stream of that loop: a pod's run of server
/// WebSocket frames becomes one slab of gRPC messages (`GRPCFrameCodec`
/// prefix, then the envelope), so each subscriber queues one slice per run,
/// as a WebSocket subscriber does, instead of a prefix and a payload per
/// frame.
///
/// One copy of the payloads per run per loop, none per subscriber (the
/// price of a prefix that is longer than the WebSocket header it would
/// replace). Ownership: the cache holds one count on the run it encoded
/// (so its address cannot be reused while it is the key) and one on the
/// encoding, until the next run replaces them. Loop-confined.
final class GRPCEncodingCache {
    private var source: SlabSlice?
    private var encoded: SlabSlice?

    deinit {
        source?.release()
        encoded?.release()
    }

    /// The gRPC messages for `run` (server WebSocket frames laid end to
    /// end), uncounted: valid until the next call; queue it to keep it.
    func encoding(of run: SlabSlice) -> SlabSlice {
        if let s = source, let e = encoded, s.start == run.start, s.count == run.count,
           s.slab.toOpaque() == run.slab.toOpaque() {
            return e
        }
        var size = 0
        var offset = 0
        while offset < run.count {
            let (header, length) = GRPCStream.serverFrame(run.start + offset)
            size += GRPCFrameCodec.prefixSize(payloadLength: length) + length
            offset += header + length
        }
        let slab = Slab.allocate(capacity: size)
        offset = 0
        while offset < run.count {
            let (header, length) = GRPCStream.serverFrame(run.start + offset)
            let at = slab.base + slab.used
            let n = GRPCFrameCodec.writePrefix(payloadLength: length, to: at)
            if length > 0 { (at + n).copyMemory(from: run.start + offset + header, byteCount: length) }
            slab.used += n + length
            offset += header + length
        }
        source?.release()
        encoded?.release()
        run.retain()
        source = run
        encoded = slab.written          // the slab's one count is the cache's
        return slab.written
    }
}
