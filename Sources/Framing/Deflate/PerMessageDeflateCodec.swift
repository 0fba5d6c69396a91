import CLibdeflate

/// DEFLATE for permessage-deflate messages (RFC 7692 §7.2) with no context
/// takeover either way, through libdeflate's one-shot calls: no stream
/// state lives between messages, so one codec serves every connection of a
/// loop. Not thread-safe: one per loop (it owns libdeflate's work areas).
///
/// Out (§7.2.1, §7.2.3.3): libdeflate ends the data with a final block
/// (BFINAL=1); per §7.2.1 an empty stored block is appended and its last
/// four octets (00 00 FF FF) removed, which leaves one 0x00 octet.
///
/// In (§7.2.2): the sender removed 00 00 FF FF; they are appended again,
/// and then an empty final block (03 00), because libdeflate's one-shot
/// decompressor needs a stream that ends (a sender that flushed with an
/// empty stored block, as zlib does, never sent one). Output is bounded:
/// inflating past `limit` stops with `.tooLarge` before more is written.
public final class PerMessageDeflateCodec {
    public enum InflateFailure: Error, Equatable, Sendable {
        /// The message inflates past the limit (a deflate bomb): close 1009.
        case tooLarge
        /// Not valid DEFLATE data: close 1007.
        case invalid
    }

    public let level: Int32
    private let compressor: OpaquePointer
    private let decompressor: OpaquePointer
    /// Inflate output, grown as needed up to the largest limit asked for,
    /// released by `shrink` (a loop calls it when idle).
    private var scratch: UnsafeMutableRawBufferPointer

    /// `level`: libdeflate's 1 (fastest) to 12 (smallest).
    public init(level: Int32 = 6) {
        self.level = level
        compressor = libdeflate_alloc_compressor(level)
        decompressor = libdeflate_alloc_decompressor()
        scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }

    deinit {
        libdeflate_free_compressor(compressor)
        libdeflate_free_decompressor(decompressor)
        scratch.deallocate()
    }

    /// Room `compress` may need for `count` bytes of message.
    public func compressBound(_ count: Int) -> Int {
        libdeflate_deflate_compress_bound(compressor, count) + 1
    }

    /// Compresses one message into `out` (at least `compressBound` bytes);
    /// returns the payload's length.
    public func compress(_ message: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let n = libdeflate_deflate_compress(compressor, message.baseAddress, message.count, out, capacity)
        precondition(n > 0 && n < capacity, "compressBound was not respected")
        out.storeBytes(of: 0, toByteOffset: n, as: UInt8.self)      // the empty stored block's first octet
        return n + 1
    }

    public func compress(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: compressBound(message.count))
        let n = message.withUnsafeBytes { m in out.withUnsafeMutableBytes { compress(m, to: $0.baseAddress!, capacity: $0.count) } }
        return Array(out[..<n])
    }

    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF, 0x03, 0x00]

    /// Inflates one message's payload; `deliver` gets the message (valid
    /// during the call). At most `limit` bytes are ever written.
    public func inflate(_ payload: UnsafeRawBufferPointer, limit: Int,
                        _ deliver: (UnsafeRawBufferPointer) -> Void) -> InflateFailure? {
        // The input with its tail, in one buffer (libdeflate reads one).
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count + Self.tail.count, alignment: 1)
        defer { input.deallocate() }
        if payload.count > 0 { input.baseAddress!.copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        Self.tail.withUnsafeBytes { (input.baseAddress! + payload.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        // A guess that grows: most terminal text inflates 3-10x.
        var size = min(limit, max(4096, payload.count * 8))
        while true {
            if scratch.count < size + 1 {
                scratch.deallocate()
                scratch = .allocate(byteCount: size + 1, alignment: 16)
            }
            var consumed = 0
            var written = 0
            // One byte of slack: a message of exactly `limit` bytes fits,
            // one byte more does not.
            let rc = libdeflate_deflate_decompress_ex(decompressor, input.baseAddress, input.count,
                                                      scratch.baseAddress, size + 1, &consumed, &written)
            switch rc {
            case LIBDEFLATE_SUCCESS:
                if written > limit { return .tooLarge }
                deliver(UnsafeRawBufferPointer(start: scratch.baseAddress, count: written))
                return nil
            case LIBDEFLATE_INSUFFICIENT_SPACE:
                if size >= limit { return .tooLarge }
                size = min(limit, size * 4)
            default:
                return .invalid
            }
        }
    }

    /// Frees the inflate buffer (it is allocated again when needed).
    public func shrink() {
        scratch.deallocate()
        scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }
}
