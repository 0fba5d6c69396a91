/// A parsed frame header (RFC 6455 §5.2).
struct WebSocketFrameHeader {
    var fin: Bool
    /// permessage-deflate's "compressed" bit (only ever set where allowed).
    var rsv1: Bool = false
    var opcode: WebSocketOpcode
    /// Key bytes in wire order as a big-endian number; nil when unmasked.
    var maskKey: UInt32?
    var payloadLength: Int

    /// Largest header: 2 fixed bytes, 8 length bytes, 4 key bytes.
    static let maxSize = 14

    /// Header size, known once the second byte has arrived.
    static func size(secondByte: UInt8) -> Int {
        let lengthBytes: Int
        switch secondByte & 0x7F {
        case 126: lengthBytes = 2
        case 127: lengthBytes = 8
        default: lengthBytes = 0
        }
        return 2 + lengthBytes + (secondByte & 0x80 != 0 ? 4 : 0)
    }

    /// Everything the first two bytes decide, checked before waiting for the
    /// rest of the header so that bad frames fail as early as possible.
    static func checkLeadingBytes(
        _ first: UInt8, _ second: UInt8, expectMasked: Bool, messageInProgress: Bool, compressed: Bool = false
    ) throws(WebSocketDecodeFailure) {
        // RSV2 and RSV3 must be clear (§5.2); RSV1 too unless permessage-deflate
        // was negotiated, and then only on a message's first frame (RFC 7692 §6.1).
        guard first & 0x30 == 0 else { throw .reservedBitsSet }
        guard let opcode = WebSocketOpcode(rawValue: first & 0x0F) else { throw .reservedOpcode }
        if first & 0x40 != 0 {
            guard compressed else { throw .reservedBitsSet }
            guard opcode == .text || opcode == .binary else { throw .compressedBitMisplaced }
        }
        let fin = first & 0x80 != 0
        if opcode.isControl {
            // §5.5: control frames are never fragmented and carry ≤ 125 bytes.
            guard fin else { throw .fragmentedControlFrame }
            guard second & 0x7F <= 125 else { throw .controlFrameTooLong }
        } else if opcode == .continuation {
            guard messageInProgress else { throw .unexpectedContinuation }
        } else {
            guard !messageInProgress else { throw .expectedContinuation }
        }
        let masked = second & 0x80 != 0
        if expectMasked {
            guard masked else { throw .unmaskedClientFrame }
        } else {
            guard !masked else { throw .maskedServerFrame }
        }
    }

    /// The payload length when it is in the 7- or 16-bit form and minimal,
    /// and how many length bytes follow the second byte (0 or 2); nil for
    /// the 64-bit form, a non-minimal 16-bit length, or when the `available`
    /// bytes at `bytes` (the header's first byte on) do not hold it yet.
    /// The one place a short length is read: `parse` and the decoder's fast
    /// path both use it.
    @inline(__always)
    static func shortLength(second: UInt8, at bytes: UnsafeRawPointer, available: Int) -> (length: Int, lengthBytes: Int)? {
        let short = Int(second & 0x7F)
        if short < 126 { return (short, 0) }
        guard short == 126, available >= 4 else { return nil }
        let wide = Int(bytes.load(fromByteOffset: 2, as: UInt8.self)) << 8 | Int(bytes.load(fromByteOffset: 3, as: UInt8.self))
        return wide >= 126 ? (wide, 2) : nil
    }

    /// Parses a complete header of `size(secondByte:)` bytes whose leading
    /// bytes already passed `checkLeadingBytes`.
    static func parse(_ bytes: UnsafeRawPointer) throws(WebSocketDecodeFailure) -> WebSocketFrameHeader {
        let first = bytes.load(as: UInt8.self)
        let second = bytes.load(fromByteOffset: 1, as: UInt8.self)
        var offset = 2
        var length: Int
        switch second & 0x7F {
        case 126:
            guard let (short, _) = shortLength(second: second, at: bytes, available: 4) else { throw .nonMinimalLength }
            length = short
            offset = 4
        case 127:
            let wide = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            guard wide & (1 << 63) == 0 else { throw .lengthTopBitSet }
            guard wide > 0xFFFF else { throw .nonMinimalLength }
            // Only a 32-bit Int can fail here, and no such message fits anyway.
            guard let exact = Int(exactly: wide) else { throw .messageTooBig }
            length = exact
            offset = 10
        case let short:
            length = Int(short)
        }
        let maskKey: UInt32? = second & 0x80 != 0
            ? UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            : nil
        return WebSocketFrameHeader(
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            opcode: WebSocketOpcode(rawValue: first & 0x0F)!,  // checked by checkLeadingBytes
            maskKey: maskKey,
            payloadLength: length)
    }
}
