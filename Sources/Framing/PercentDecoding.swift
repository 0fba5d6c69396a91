/// Percent-decoding (RFC 3986 §2.1) of URI components.
public enum PercentDecoding {
    /// Decodes `%XX` escapes (and '+' as space when `plusAsSpace`).
    /// Returns nil for a truncated or non-hex escape, for a decoded NUL, or
    /// when the result is not valid UTF-8.
    public static func decode(_ component: Substring, plusAsSpace: Bool = false) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(component.utf8.count)
        var it = component.utf8.makeIterator()
        while let b = it.next() {
            switch b {
            case UInt8(ascii: "%"):
                guard let h = it.next(), let hi = ASCII.hexValue(h),
                      let l = it.next(), let lo = ASCII.hexValue(l) else { return nil }
                let decoded = hi << 4 | lo
                if decoded == 0 { return nil }
                out.append(decoded)
            case UInt8(ascii: "+") where plusAsSpace:
                out.append(ASCII.space)
            default:
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    public static func decode(_ component: String, plusAsSpace: Bool = false) -> String? {
        decode(component[...], plusAsSpace: plusAsSpace)
    }
}
