/// Writes RFC 6455 frames: unmasked server headers (the payload follows in
/// the caller's buffer) and complete masked client frames.
public enum WebSocketEncoder {
    public static let maxServerHeaderSize = 10

    /// 2, 4 or 10 bytes: the minimal length encoding (RFC 6455 §5.2).
    public static func serverHeaderSize(payloadLength: Int) -> Int {
        precondition(payloadLength >= 0, "negative payload length")
        if payloadLength <= 125 { return 2 }
        if payloadLength <= 0xFFFF { return 4 }
        return 10
    }

    /// Writes an unmasked header; returns its size.
    @discardableResult
    public static func writeServerHeader(
        opcode: WebSocketOpcode, fin: Bool = true, payloadLength: Int, to destination: UnsafeMutableRawPointer
    ) -> Int {
        writeHeader(opcode: opcode, fin: fin, payloadLength: payloadLength, maskBit: 0, to: destination)
    }

    /// Header, masking key and payload.
    public static func clientFrameSize(payloadLength: Int) -> Int {
        serverHeaderSize(payloadLength: payloadLength) + 4 + payloadLength
    }

    /// Writes a complete masked frame (header, key, masked copy of `payload`)
    /// of `clientFrameSize(payloadLength:)` bytes; returns that size.
    /// `maskKey` is in wire order read big-endian, as for `webSocketUnmask`.
    public static func writeClientFrame(
        opcode: WebSocketOpcode, fin: Bool = true, payload: UnsafeRawBufferPointer, maskKey: UInt32,
        to destination: UnsafeMutableRawPointer
    ) -> Int {
        var size = writeHeader(opcode: opcode, fin: fin, payloadLength: payload.count, maskBit: 0x80, to: destination)
        destination.storeBytes(of: maskKey.bigEndian, toByteOffset: size, as: UInt32.self)
        size += 4
        if let source = payload.baseAddress, payload.count > 0 {
            let body = destination + size
            body.copyMemory(from: source, byteCount: payload.count)
            _ = webSocketUnmask(UnsafeMutableRawBufferPointer(start: body, count: payload.count), key: maskKey, phase: 0)
        }
        return size + payload.count
    }

    /// A close frame payload: the code, then `reason` truncated on a UTF-8
    /// boundary so that the payload fits a control frame (≤ 125 bytes).
    public static func closePayload(code: UInt16, reason: String) -> [UInt8] {
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        let utf8 = Array(reason.utf8)
        var length = min(utf8.count, 125 - 2)
        // Never cut inside a code point: back up to a lead byte.
        while length < utf8.count && length > 0 && utf8[length] & 0xC0 == 0x80 {
            length -= 1
        }
        payload.append(contentsOf: utf8[..<length])
        return payload
    }

    private static func writeHeader(
        opcode: WebSocketOpcode, fin: Bool, payloadLength: Int, maskBit: UInt8, to destination: UnsafeMutableRawPointer
    ) -> Int {
        precondition(!opcode.isControl || (fin && payloadLength <= 125),
                     "control frames must be final and carry at most 125 bytes")
        destination.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        switch serverHeaderSize(payloadLength: payloadLength) {
        case 2:
            destination.storeBytes(of: maskBit | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            return 2
        case 4:
            destination.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            destination.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        default:
            destination.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            destination.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
            return 10
        }
    }
}
