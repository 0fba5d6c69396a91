/// Splits a request-target (RFC 9112 §3.2) into a decoded path and query.
enum RequestTarget {
    /// Accepts origin-form ("/p?q"), absolute-form ("http://host/p?q") and
    /// asterisk-form ("*"). Returns nil for anything else, for a fragment
    /// ('#' is never sent by clients) or for bad percent-encoding.
    static func split(_ target: String) -> (path: String, query: [(name: String, value: String)])? {
        if target == "*" { return ("*", []) }
        if target.utf8.contains(UInt8(ascii: "#")) { return nil }

        var rest = target[...]
        if rest.first != "/" {
            guard let afterAuthority = stripSchemeAndAuthority(rest) else { return nil }
            rest = afterAuthority
        }
        let rawPath: Substring
        let rawQuery: Substring?
        if let q = rest.firstIndex(of: "?") {
            rawPath = rest[..<q]
            rawQuery = rest[rest.index(after: q)...]
        } else {
            rawPath = rest
            rawQuery = nil
        }
        guard let path = PercentDecoding.decode(rawPath.isEmpty ? "/" : rawPath) else { return nil }
        var query: [(name: String, value: String)] = []
        if let rawQuery {
            guard let parsed = parseQuery(rawQuery) else { return nil }
            query = parsed
        }
        return (path, query)
    }

    /// "scheme://authority/rest" → "/rest" (or "" when there is no path).
    private static func stripSchemeAndAuthority(_ s: Substring) -> Substring? {
        guard let colon = s.firstIndex(of: ":") else { return nil }
        let scheme = s[..<colon]
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        guard let first = scheme.utf8.first, isAlpha(first),
              scheme.utf8.allSatisfy({ isAlpha($0) || HTTPRequestHeadParser.isDigit($0) || $0 == UInt8(ascii: "+")
                  || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else { return nil }
        let afterScheme = s[s.index(after: colon)...]
        guard afterScheme.hasPrefix("//") else { return nil }
        let authority = afterScheme.dropFirst(2)
        let end = authority.firstIndex { $0 == "/" || $0 == "?" } ?? authority.endIndex
        guard end > authority.startIndex else { return nil }
        return authority[end...]
    }

    private static func isAlpha(_ b: UInt8) -> Bool {
        (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z")
    }

    /// application/x-www-form-urlencoded style: '&'-separated, '+' is space,
    /// empty pairs skipped, a name without '=' has the value "".
    private static func parseQuery(_ raw: Substring) -> [(name: String, value: String)]? {
        var result: [(name: String, value: String)] = []
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring
            let value: Substring
            if let eq = pair.firstIndex(of: "=") {
                name = pair[..<eq]
                value = pair[pair.index(after: eq)...]
            } else {
                name = pair
                value = ""
            }
            guard let n = PercentDecoding.decode(name, plusAsSpace: true),
                  let v = PercentDecoding.decode(value, plusAsSpace: true) else { return nil }
            result.append((name: n, value: v))
        }
        return result
    }
}
