import Testing
@testable import Framing

@Suite struct JSONParserTests {
    func parse(_ s: String, maxDepth: Int = 32, maxSize: Int = 1 << 20) -> Result<JSONValue, JSONParseError> {
        Result { () throws(JSONParseError) in try JSONParser.parse(s, maxDepth: maxDepth, maxSize: maxSize) }
    }

    func error(_ s: String, maxDepth: Int = 32, maxSize: Int = 1 << 20) -> JSONParseError? {
        if case .failure(let e) = parse(s, maxDepth: maxDepth, maxSize: maxSize) { return e }
        return nil
    }

    @Test func structures() throws {
        let v = try JSONParser.parse(" {\"a\": [1, true, false, null, \"x\"], \"b\": {}, \"c\": []} \n")
        #expect(v == .object([
            ("a", .array([.number(1), .bool(true), .bool(false), .null, .string("x")])),
            ("b", .object([])),
            ("c", .array([])),
        ]))
        #expect(v["a"] == .array([.number(1), .bool(true), .bool(false), .null, .string("x")]))
        #expect(v["zz"] == nil)
    }

    @Test func objectEqualityIsOrdered() {
        let ab = JSONValue.object([("a", .null), ("b", .null)])
        let ba = JSONValue.object([("b", .null), ("a", .null)])
        #expect(ab != ba)
        #expect(ab == .object([("a", .null), ("b", .null)]))
        #expect(JSONValue.object([("a", .null)]) != .object([("a", .bool(false))]))
    }

    @Test func scalarsAtTopLevel() throws {
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse("\"s\"") == .string("s"))
        #expect(try JSONParser.parse("-0") == .number(-0.0))
    }

    @Test func numbers() throws {
        let cases: [(String, Double)] = [
            ("0", 0), ("-1", -1), ("123", 123), ("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000),
            ("1E+2", 100), ("25e-1", 2.5), ("9007199254740993", 9007199254740992), ("1e-400", 0),
            ("1.7976931348623157e308", .greatestFiniteMagnitude),
        ]
        for (text, value) in cases { #expect(try JSONParser.parse(text) == .number(value), "\(text)") }
        for bad in ["01", "-", "+1", "1.", ".5", "1e", "1e+", "0x10", "1.e3", "--1", "1e400", "-1e400", "NaN", "Infinity"] {
            #expect(error(bad) != nil, "\(bad)")
        }
    }

    @Test func escapes() throws {
        #expect(try JSONParser.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{C}\n\r\t"))
        #expect(try JSONParser.parse(#""\u0041\u00e9\u20AC\u0000""#) == .string("Aé€\u{0}"))
        // U+1F600 as a surrogate pair, and raw UTF-8.
        #expect(try JSONParser.parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try JSONParser.parse("\"😀é\"") == .string("😀é"))
    }

    @Test func badStrings() {
        #expect(error(#""\uD83D""#)?.kind == .invalidSurrogate)
        #expect(error(#""\uD83Dx""#)?.kind == .invalidSurrogate)
        #expect(error(#""\uD83D\u0041""#)?.kind == .invalidSurrogate)
        #expect(error(#""\uDE00""#)?.kind == .invalidSurrogate)
        #expect(error(#""\x""#) == JSONParseError(.invalidEscape, at: 2))
        #expect(error(#""\u12G4""#)?.kind == .invalidEscape)
        #expect(error("\"a\nb\"") == JSONParseError(.invalidString, at: 2))
        #expect(error("\"\u{1F}\"")?.kind == .invalidString)
        #expect(error("\"abc")?.kind == .unexpectedEnd)
        #expect(error(#""\u12"#)?.kind == .unexpectedEnd)
        // Cut short after a high surrogate (found by fuzz-json).
        #expect(error(#""\uD83D"#)?.kind == .unexpectedEnd)
        #expect(error(#""\uD83D\"#)?.kind == .unexpectedEnd)
        let invalidUTF8: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError(.invalidString, at: 3)) { try JSONParser.parse(invalidUTF8) }
    }

    @Test func syntaxErrors() {
        #expect(error("")?.kind == .unexpectedEnd)
        #expect(error("   ")?.kind == .unexpectedEnd)
        #expect(error("[1,]")?.kind == .unexpectedCharacter)
        #expect(error("{\"a\":1,}")?.kind == .unexpectedCharacter)
        #expect(error("{a:1}")?.kind == .unexpectedCharacter)
        #expect(error("{\"a\" 1}")?.kind == .unexpectedCharacter)
        #expect(error("[1 2]")?.kind == .unexpectedCharacter)
        #expect(error("tru")?.kind == .unexpectedEnd)
        #expect(error("trUe")?.kind == .unexpectedCharacter)
        #expect(error("[1] [2]") == JSONParseError(.trailingCharacters, at: 4))
        #expect(error("\u{FEFF}{}")?.kind == .unexpectedCharacter)
        #expect(error("{\"a\":1,\"a\":2}") == JSONParseError(.duplicateKey, at: 7))
        #expect(error("[\u{0B}]")?.kind == .unexpectedCharacter)  // VT is not JSON whitespace
    }

    @Test func depthLimit() {
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(error(ok) == nil)
        #expect(error(deep) == JSONParseError(.tooDeep, at: 32))
        #expect(error("{\"a\":{\"b\":[1]}}", maxDepth: 2)?.kind == .tooDeep)
        #expect(error("{\"a\":{\"b\":1}}", maxDepth: 2) == nil)
        // Far too deep input fails fast rather than overflowing the stack.
        #expect(error(String(repeating: "[", count: 100_000))?.kind == .tooDeep)
    }

    @Test func sizeLimit() {
        #expect(error("[1,2]", maxSize: 5) == nil)
        #expect(error("[1,2] ", maxSize: 5) == JSONParseError(.tooLarge, at: 0))
    }
}
