/// Strict RFC 8259 parser.
///
/// Beyond the grammar it refuses, on purpose: nesting deeper than `maxDepth`,
/// input longer than `maxSize`, invalid UTF-8, lone surrogates in \u escapes,
/// duplicate object keys (parsers disagree on which one wins, which matters
/// for signed JWT claims) and numbers that overflow a Double.
public struct JSONParser {
    public static let defaultMaxDepth = 32
    public static let defaultMaxSize = 1 << 20

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth,
                             maxSize: Int = defaultMaxSize) throws(JSONParseError) -> JSONValue {
        guard bytes.count <= maxSize else { throw JSONParseError(.tooLarge, at: 0) }
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw JSONParseError(.trailingCharacters, at: parser.index) }
        return value
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth,
                             maxSize: Int = defaultMaxSize) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth, maxSize: maxSize)
    }

    private let bytes: [UInt8]
    private let maxDepth: Int
    private var index = 0

    private init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func fail(_ kind: JSONParseError.Kind) -> JSONParseError {
        JSONParseError(index < bytes.count ? kind : .unexpectedEnd, at: index)
    }

    /// A high surrogate escape not followed by `\u`: cut short, or lone.
    private func lowSurrogateMissing(_ escapeStart: Int) -> JSONParseError {
        current == nil ? fail(.unexpectedEnd) : JSONParseError(.invalidSurrogate, at: escapeStart)
    }

    private mutating func skipWhitespace() {
        while let b = current, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { index += 1 }
    }

    private mutating func expect(_ byte: UInt8) throws(JSONParseError) {
        guard current == byte else { throw fail(.unexpectedCharacter) }
        index += 1
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let b = current else { throw fail(.unexpectedEnd) }
        switch b {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail(.unexpectedCharacter)
        }
    }

    private mutating func parseLiteral(_ word: String) throws(JSONParseError) {
        for b in word.utf8 { try expect(b) }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw fail(.tooDeep) }
        index += 1
        var members: [(String, JSONValue)] = []
        var keys = Set<String>()
        skipWhitespace()
        if current == UInt8(ascii: "}") { index += 1; return .object(members) }
        while true {
            skipWhitespace()
            let keyOffset = index
            guard current == UInt8(ascii: "\"") else { throw fail(.unexpectedCharacter) }
            let key = try parseString()
            guard keys.insert(key).inserted else { throw JSONParseError(.duplicateKey, at: keyOffset) }
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            members.append((key, try parseValue(depth: depth)))
            skipWhitespace()
            if current == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "}"))
            return .object(members)
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw fail(.tooDeep) }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return .array(elements) }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            if current == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "]"))
            return .array(elements)
        }
    }

    /// number = [ "-" ] int [ frac ] [ exp ]
    private mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        if current == UInt8(ascii: "0") {
            index += 1
        } else {
            guard try digits() > 0 else { throw fail(.invalidNumber) }
        }
        if current == UInt8(ascii: ".") {
            index += 1
            guard try digits() > 0 else { throw fail(.invalidNumber) }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard try digits() > 0 else { throw fail(.invalidNumber) }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw JSONParseError(.invalidNumber, at: start) }
        return value
    }

    private mutating func digits() throws(JSONParseError) -> Int {
        let start = index
        while let b = current, b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard let b = current else { throw fail(.unexpectedEnd) }
            switch b {
            case UInt8(ascii: "\""):
                index += 1
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw JSONParseError(.invalidString, at: index - 1)
                }
                return s
            case UInt8(ascii: "\\"):
                index += 1
                try parseEscape(into: &out)
            case 0x00..<0x20:
                throw fail(.invalidString)
            default:
                out.append(b)
                index += 1
            }
        }
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONParseError) {
        guard let e = current else { throw fail(.unexpectedEnd) }
        index += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let escapeStart = index - 2
            let unit = try hex4()
            var scalarValue = UInt32(unit)
            if (0xD800...0xDBFF).contains(unit) {
                // Input that ends here is cut short (unexpectedEnd, like any
                // other truncation), not a lone surrogate.
                guard current == UInt8(ascii: "\\") else { throw lowSurrogateMissing(escapeStart) }
                index += 1
                guard current == UInt8(ascii: "u") else { throw lowSurrogateMissing(escapeStart) }
                index += 1
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw JSONParseError(.invalidSurrogate, at: escapeStart) }
                scalarValue = 0x10000 + (UInt32(unit - 0xD800) << 10) + UInt32(low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONParseError(.invalidSurrogate, at: escapeStart)
            }
            // Cannot fail: surrogates were handled above.
            guard let scalar = Unicode.Scalar(scalarValue) else { throw JSONParseError(.invalidSurrogate, at: escapeStart) }
            out += Array(String(Character(scalar)).utf8)
        default:
            index -= 1
            throw fail(.invalidEscape)
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let b = current else { throw fail(.unexpectedEnd) }
            guard let v = ASCII.hexValue(b) else { throw fail(.invalidEscape) }
            value = value << 4 | UInt16(v)
            index += 1
        }
        return value
    }
}
