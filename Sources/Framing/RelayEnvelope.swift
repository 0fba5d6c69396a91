/// Encoders for relay messages: `[type byte][payload]`, integers big-endian.
public enum RelayEnvelope {
    /// `[0x20][epoch u32][seq u64]`
    public static func position(epoch: UInt32, seq: UInt64) -> [UInt8] {
        var out: [UInt8] = [RelayFrameType.position.rawValue]
        appendBigEndian(epoch, to: &out)
        appendBigEndian(seq, to: &out)
        return out
    }

    /// `[0x21][epoch u32][from u64][to u64]`
    public static func gap(epoch: UInt32, from: UInt64, to: UInt64) -> [UInt8] {
        var out: [UInt8] = [RelayFrameType.gap.rawValue]
        appendBigEndian(epoch, to: &out)
        appendBigEndian(from, to: &out)
        appendBigEndian(to, to: &out)
        return out
    }

    /// `[0x22][dropped u64]`
    public static func lagged(droppedFrames: UInt64) -> [UInt8] {
        var out: [UInt8] = [RelayFrameType.lagged.rawValue]
        appendBigEndian(droppedFrames, to: &out)
        return out
    }

    /// `[0x23]{"browsers":n,"writers":n}`
    public static func presence(browsers: Int, writers: Int) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("browsers"); w.integer(Int64(browsers))
        w.key("writers"); w.integer(Int64(writers))
        w.endObject()
        return [RelayFrameType.presence.rawValue] + w.bytes
    }

    /// `[0x24][code u16][UTF-8 reason]`
    public static func error(code: UInt16, reason: String) -> [UInt8] {
        var out: [UInt8] = [RelayFrameType.error.rawValue]
        appendBigEndian(code, to: &out)
        out += Array(reason.utf8)
        return out
    }

    /// `[0x04][cols u16][rows u16]`, as AgentsMesh EncodeResize.
    public static func resize(cols: UInt16, rows: UInt16) -> [UInt8] {
        var out: [UInt8] = [RelayFrameType.resize.rawValue]
        appendBigEndian(cols, to: &out)
        appendBigEndian(rows, to: &out)
        return out
    }

    /// Reads a resize payload (the bytes after the type byte). Like AgentsMesh
    /// DecodeResize, needs at least 4 bytes and ignores any extra.
    public static func parseResize(_ payload: UnsafeRawBufferPointer) -> (cols: UInt16, rows: UInt16)? {
        guard payload.count >= 4 else { return nil }
        let cols = UInt16(payload[0]) << 8 | UInt16(payload[1])
        let rows = UInt16(payload[2]) << 8 | UInt16(payload[3])
        return (cols, rows)
    }

    private static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        for shift in stride(from: T.bitWidth - 8, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }
}
