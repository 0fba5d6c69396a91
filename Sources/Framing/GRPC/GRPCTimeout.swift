/// The `grpc-timeout` header (gRPC over HTTP/2: 1-8 digits and a unit, H M
/// S m u n) in nanoseconds; nil when malformed.
public enum GRPCTimeout {
    public static func nanoseconds(_ value: String) -> UInt64? {
        let u = value.utf8
        guard u.count >= 2, u.count <= 9, let unit = u.last else { return nil }
        var n: UInt64 = 0
        for b in u.dropLast() {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + UInt64(b - 0x30)
        }
        let scale: UInt64
        switch unit {
        case UInt8(ascii: "H"): scale = 3_600_000_000_000
        case UInt8(ascii: "M"): scale = 60_000_000_000
        case UInt8(ascii: "S"): scale = 1_000_000_000
        case UInt8(ascii: "m"): scale = 1_000_000
        case UInt8(ascii: "u"): scale = 1_000
        case UInt8(ascii: "n"): scale = 1
        default: return nil
        }
        let (r, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? UInt64.max : r
    }
}
