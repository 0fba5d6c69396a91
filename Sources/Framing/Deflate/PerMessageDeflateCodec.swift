import CLibdeflate
import CZlib

/// DEFLATE for permessage-deflate messages (RFC 7692 §7.2) with no context
/// takeover either way: no stream state lives between messages, so one
/// codec serves every connection of a loop. Not thread-safe: one per loop
/// (it owns the libraries' work areas).
///
/// Out (§7.2.1): zlib, reset per message, with a sync flush, its trailing
/// 00 00 FF FF removed: the form every client reads. (libdeflate compresses
/// faster but can only end with a final block (BFINAL=1), which §7.2.3.3
/// allows and which several clients mishandle: OkHttp and kosoku loop
/// forever on it.)
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
    /// zlib's deflate state (raw, 32 KiB window), reset per message.
    private let stream: UnsafeMutablePointer<z_stream>
    private let decompressor: OpaquePointer
    /// Inflate output, grown as needed up to the largest limit asked for,
    /// released by `shrink` (a loop calls it when idle).
    private var scratch: UnsafeMutableRawBufferPointer

    /// `level`: zlib's 1 (fastest) to 9 (smallest).
    public init(level: Int32 = 6) {
        self.level = level
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = czlib_deflate_init_raw(stream, level)
        precondition(rc == Z_OK, "deflateInit2: \(rc)")
        decompressor = libdeflate_alloc_decompressor()
        scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        libdeflate_free_decompressor(decompressor)
        scratch.deallocate()
    }

    /// Room `compress` may need for `count` bytes of message.
    public func compressBound(_ count: Int) -> Int {
        Int(deflateBound(stream, uLong(count))) + 16      // and the sync flush's empty block
    }

    /// Compresses one message into `out` (at least `compressBound` bytes);
    /// returns the payload's length.
    public func compress(_ message: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer, capacity: Int) -> Int {
        deflateReset(stream)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: message.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(message.count)
        stream.pointee.next_out = out.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(capacity)
        let rc = deflate(stream, Z_SYNC_FLUSH)
        let n = capacity - Int(stream.pointee.avail_out)
        precondition(rc == Z_OK && stream.pointee.avail_in == 0 && n >= 4, "compressBound was not respected")
        // The sync flush ends with 00 00 FF FF; the receiver puts it back (§7.2.1).
        return n - 4
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
