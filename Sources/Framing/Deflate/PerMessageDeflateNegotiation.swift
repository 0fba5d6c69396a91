/// The permessage-deflate handshake (RFC 7692 §5, §7.1), sans-I/O: the
/// client's offers in, the one to accept and the response value out.
///
/// The relay compresses each message on its own, once, and shares the bytes
/// with every subscriber that negotiated the extension, so it always answers
/// `server_no_context_takeover` (§7.1.1.1). It also asks the client not to
/// keep context (`client_no_context_takeover`, which §7.1.1.2 lets a server
/// add to any offer), so every client message inflates alone and no
/// connection holds inflate state between messages.
///
/// An offer the relay cannot honour is declined, never the handshake: the
/// next offer is tried, and with none left the connection is uncompressed.
/// Declined: unknown or repeated parameters, malformed values, and
/// `server_max_window_bits` below 15 (the compressor uses DEFLATE's whole
/// 32 KiB window; it cannot promise a smaller one).
public enum PerMessageDeflateNegotiation {
    public static let token = "permessage-deflate"

    /// What the relay accepted.
    public struct Agreement: Sendable, Equatable {
        /// `Sec-WebSocket-Extensions` of the response.
        public let responseValue: String
        /// The client may use at most this window (it offered
        /// `client_max_window_bits=N`); 15 otherwise. Inflating does not
        /// depend on it; kept for logs and tests.
        public let clientMaxWindowBits: Int
    }

    /// The first acceptable offer among every `Sec-WebSocket-Extensions`
    /// value of the request (in order), or nil.
    public static func negotiate(_ headerValues: [String]) -> Agreement? {
        for value in headerValues {
            for offer in splitOffers(value) {
                if let agreement = accept(offer) { return agreement }
            }
        }
        return nil
    }

    /// One offer: its token and parameters, or nil when it is not ours or
    /// cannot be honoured.
    static func accept(_ offer: Substring) -> Agreement? {
        var parts = split(offer, on: ";")
        guard let name = parts.first, ASCII.equalsIgnoringCase(String(name), token) else { return nil }
        parts.removeFirst()
        var seen = Set<String>()
        var clientBits = 15
        var serverBitsOffered = false
        for part in parts {
            let (key, value) = keyValue(part)
            guard !key.isEmpty, seen.insert(key).inserted else { return nil }
            switch key {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return nil }
            case "server_max_window_bits":
                guard let v = value, let bits = windowBits(v), bits == 15 else { return nil }
                serverBitsOffered = true
            case "client_max_window_bits":
                if let v = value {
                    guard let bits = windowBits(v) else { return nil }
                    clientBits = bits
                }
            default:
                return nil
            }
        }
        // An offered server_max_window_bits is accepted by answering it
        // (§7.1.2.1); 15 is the only value the relay takes.
        var response = "\(token); server_no_context_takeover; client_no_context_takeover"
        if serverBitsOffered { response += "; server_max_window_bits=15" }
        return Agreement(responseValue: response, clientMaxWindowBits: clientBits)
    }

    /// 8...15 as 1*DIGIT without leading zeros, bare or quoted (§7.1.2).
    static func windowBits(_ raw: Substring) -> Int? {
        var v = raw
        if v.count >= 2 && v.first == "\"" && v.last == "\"" { v = v.dropFirst().dropLast() }
        guard !v.isEmpty, v.count <= 2, v.first != "0", v.allSatisfy({ $0.isASCII && $0.isNumber }),
              let n = Int(v), (8...15).contains(n) else { return nil }
        return n
    }

    /// The offers of one header value: split at commas outside quotes.
    static func splitOffers(_ value: String) -> [Substring] {
        split(Substring(value), on: ",")
    }

    private static func split(_ s: Substring, on separator: Character) -> [Substring] {
        var out: [Substring] = []
        var start = s.startIndex
        var quoted = false
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "\"" { quoted.toggle() }
            if c == separator && !quoted {
                out.append(trim(s[start..<i]))
                start = s.index(after: i)
            }
            i = s.index(after: i)
        }
        out.append(trim(s[start...]))
        return out.filter { !$0.isEmpty }
    }

    private static func keyValue(_ part: Substring) -> (String, Substring?) {
        guard let eq = part.firstIndex(of: "=") else { return (String(part).lowercased(), nil) }
        return (String(trim(part[..<eq])).lowercased(), trim(part[part.index(after: eq)...]))
    }

    private static func trim(_ s: Substring) -> Substring {
        var t = s
        while let f = t.first, f == " " || f == "\t" { t = t.dropFirst() }
        while let l = t.last, l == " " || l == "\t" { t = t.dropLast() }
        return t
    }
}
