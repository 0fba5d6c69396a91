/// `relay.v1.Frame { bytes data = 1; }` (proto/relay/v1/relay.proto) on the
/// wire, written by hand so that a frame's payload is never copied: the
/// gRPC prefix (flag, length) and the protobuf field header (tag 0x0A, a
/// varint length) are at most 11 bytes written before a shared payload.
public enum GRPCFrameCodec {
    /// Longest prefix `writePrefix` writes.
    public static let maxPrefixSize = 11

    /// Bytes of prefix for a `payloadLength`-byte `data`.
    public static func prefixSize(payloadLength n: Int) -> Int {
        n == 0 ? 5 : 6 + varintSize(UInt64(n))
    }

    /// Writes the gRPC message prefix and the field header for a
    /// `payloadLength`-byte `data`; returns how many bytes it wrote. An
    /// empty `data` is the empty message (proto3 omits default fields).
    @discardableResult
    public static func writePrefix(payloadLength n: Int, to out: UnsafeMutableRawPointer) -> Int {
        let messageLength = n == 0 ? 0 : 1 + varintSize(UInt64(n)) + n
        out.storeBytes(of: 0, as: UInt8.self)
        out.storeBytes(of: UInt32(messageLength).bigEndian, toByteOffset: 1, as: UInt32.self)
        guard n > 0 else { return 5 }
        out.storeBytes(of: 0x0A, toByteOffset: 5, as: UInt8.self)
        var v = UInt64(n)
        var i = 6
        while v >= 0x80 {
            out.storeBytes(of: UInt8(v & 0x7F) | 0x80, toByteOffset: i, as: UInt8.self)
            v >>= 7
            i += 1
        }
        out.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self)
        return i + 1
    }

    /// A whole gRPC message for `payload` (tests, small control replies).
    public static func message(_ payload: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: prefixSize(payloadLength: payload.count))
        out.withUnsafeMutableBytes { _ = writePrefix(payloadLength: payload.count, to: $0.baseAddress!) }
        return out + payload
    }

    public enum DecodeError: Error, Equatable, Sendable {
        case truncated
        case badWireType(UInt8)
    }

    /// The `data` field of an encoded `Frame` (its last occurrence, as
    /// protobuf merges; empty if absent). Unknown fields are skipped.
    public static func data(of message: UnsafeRawBufferPointer) -> Result<UnsafeRawBufferPointer, DecodeError> {
        var i = 0
        var found = UnsafeRawBufferPointer(start: nil, count: 0)
        while i < message.count {
            guard let (key, k) = varint(message, at: i) else { return .failure(.truncated) }
            i = k
            let field = key >> 3, wire = UInt8(key & 7)
            switch wire {
            case 0:
                guard let (_, j) = varint(message, at: i) else { return .failure(.truncated) }
                i = j
            case 1:
                i += 8
            case 5:
                i += 4
            case 2:
                guard let (n, j) = varint(message, at: i), n <= UInt64(message.count - j) else { return .failure(.truncated) }
                if field == 1 { found = UnsafeRawBufferPointer(rebasing: message[j..<(j + Int(n))]) }
                i = j + Int(n)
            default:
                return .failure(.badWireType(wire))
            }
            if i > message.count { return .failure(.truncated) }
        }
        return .success(found)
    }

    static func varintSize(_ v: UInt64) -> Int {
        var n = 1, v = v
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    private static func varint(_ b: UnsafeRawBufferPointer, at start: Int) -> (UInt64, Int)? {
        var v: UInt64 = 0, shift: UInt64 = 0, i = start
        while i < b.count && shift < 64 {
            let byte = b[i]
            v |= UInt64(byte & 0x7F) << shift
            i += 1
            if byte < 0x80 { return (v, i) }
            shift += 7
        }
        return nil
    }
}
