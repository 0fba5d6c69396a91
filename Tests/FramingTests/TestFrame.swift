/// Builds frame bytes by hand, independently of `WebSocketEncoder`, so tests
/// can also produce frames that break the rules.
enum TestFrame {
    enum LengthForm {
        case minimal
        case sixteenBit
        case sixtyFourBit
        /// A 64-bit length field with this exact value (the payload is not sent).
        case raw64(UInt64)
    }

    static func make(
        opcode: UInt8, fin: Bool = true, rsv: UInt8 = 0, payload: [UInt8] = [],
        maskKey: UInt32? = nil, length: LengthForm = .minimal
    ) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        let count = payload.count
        func append64(_ value: UInt64) {
            bytes.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        switch length {
        case .minimal where count <= 125:
            bytes.append(maskBit | UInt8(count))
        case .minimal where count <= 0xFFFF, .sixteenBit:
            bytes.append(maskBit | 126)
            bytes.append(UInt8(count >> 8))
            bytes.append(UInt8(count & 0xFF))
        case .minimal, .sixtyFourBit:
            append64(UInt64(count))
        case .raw64(let value):
            append64(value)
        }
        guard let key = maskKey else { return bytes + payload }
        let keyBytes = [UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF)]
        bytes += keyBytes
        for (index, byte) in payload.enumerated() { bytes.append(byte ^ keyBytes[index % 4]) }
        return bytes
    }

    static func text(_ string: String, fin: Bool = true, maskKey: UInt32? = nil) -> [UInt8] {
        make(opcode: 1, fin: fin, payload: Array(string.utf8), maskKey: maskKey)
    }
}
