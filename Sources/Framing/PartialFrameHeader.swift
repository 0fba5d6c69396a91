/// The bytes of a frame header split across feeds, kept inline (no heap):
/// a header is at most 14 bytes (RFC 6455 §5.2).
struct PartialFrameHeader {
    private var storage: (UInt64, UInt64) = (0, 0)
    private(set) var count: UInt8 = 0

    var isEmpty: Bool { count == 0 }

    /// Copies input bytes until `target` header bytes are held or the input
    /// runs out. Returns whether `target` bytes are now held.
    mutating func gather(from input: UnsafeRawPointer, offset: inout Int, end: Int, upTo target: Int) -> Bool {
        let held = Int(count)
        let take = min(target - held, end - offset)
        if take > 0 {
            withUnsafeMutableBytes(of: &storage) { bytes in
                bytes.baseAddress!.advanced(by: held).copyMemory(from: input + offset, byteCount: take)
            }
            count = UInt8(held + take)
            offset += take
        }
        return Int(count) >= target
    }

    func byte(at index: Int) -> UInt8 {
        withUnsafeBytes(of: storage) { $0[index] }
    }

    func parse() throws(WebSocketDecodeFailure) -> WebSocketFrameHeader {
        let parsed = withUnsafeBytes(of: storage) { bytes in
            Result { () throws(WebSocketDecodeFailure) in try WebSocketFrameHeader.parse(bytes.baseAddress!) }
        }
        return try parsed.get()
    }

    mutating func clear() { count = 0 }
}
