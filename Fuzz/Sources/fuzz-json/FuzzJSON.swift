// libFuzzer target: JSONParser (strict RFC 8259) on arbitrary bytes, and
// JSONWriter on every value it accepts.
//
// Besides crashes and AddressSanitizer reports, it traps when:
//   - an error's offset is outside the input (unexpectedEnd: exactly at the
//     end; any other kind: on a byte of the input);
//   - the limits are not honoured: a value deeper than `maxDepth` is
//     accepted, or a parse under maxDepth 0, 1, 2, 32 (the default) or 256
//     disagrees with an unlimited one (it must give the same value when the
//     value fits, tooDeep when it does not, and otherwise the same error or
//     tooDeep earlier); `maxSize` one byte short is not tooLarge at 0;
//   - the String overload disagrees with the byte overload on valid UTF-8;
//   - an accepted document is not UTF-8, or holds a control byte other than
//     JSON whitespace;
//   - round trip: JSONWriter's text for an accepted value does not parse
//     back to an equal value, writes it differently the second time
//     (serialize(parse(serialize(v))) == serialize(v)), holds a raw control
//     byte or differs between `serialize` and `value(_:)`;
//   - a proper prefix of an accepted document fails with anything but
//     unexpectedEnd at its end (or invalidNumber for a number cut before its
//     exponent that overflows on its own, e.g. `1000…0` of `1000…0e-9`).
// Every parse gets an array of exactly the input's size (Swift's bounds
// checks catch reads past it).
import Framing
import FuzzDriver
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    fatalError("fuzz-json: invariant violated: \(message)")
}

typealias Outcome = Result<JSONValue, JSONParseError>

/// Limits far above anything a -max_len input reaches, except depth: 256 keeps
/// the recursive parser, writer, == and deinit well inside the stack.
let referenceDepth = 256
let depthLimits = [0, 1, 2, JSONParser.defaultMaxDepth, referenceDepth]

func parse(_ bytes: [UInt8], maxDepth: Int, maxSize: Int = Int.max) -> Outcome {
    Result { () throws(JSONParseError) in try JSONParser.parse(bytes, maxDepth: maxDepth, maxSize: maxSize) }
}

/// Nesting of arrays and objects: 0 for a scalar, 1 for `[]`.
func depth(_ value: JSONValue) -> Int {
    switch value {
    case .array(let elements): 1 + (elements.map(depth).max() ?? 0)
    case .object(let members): 1 + (members.map { depth($0.1) }.max() ?? 0)
    default: 0
    }
}

func show(_ outcome: Outcome) -> String {
    switch outcome {
    case .success(let value): "value \(JSONWriter.serialize(value).prefix(200))"
    case .failure(let error): "\(error.kind) at \(error.offset)"
    }
}

func checkOffset(_ outcome: Outcome, count: Int, _ what: String) {
    guard case .failure(let error) = outcome else { return }
    if error.kind == .unexpectedEnd ? error.offset != count : !(0..<count).contains(error.offset) {
        fail("\(what): \(error.kind) at offset \(error.offset) of a \(count)-byte input")
    }
}

/// A parse with `maxDepth` against the parse with `referenceDepth`.
func checkDepth(_ outcome: Outcome, maxDepth: Int, reference: Outcome) {
    switch (reference, outcome) {
    case (.success(let value), _):
        let d = depth(value)
        if d <= maxDepth {
            guard case .success(let limited) = outcome, limited == value else {
                fail("depth \(d) value within maxDepth \(maxDepth) gave \(show(outcome)), unlimited gave \(show(reference))")
            }
        } else {
            guard case .failure(let error) = outcome, error.kind == .tooDeep else {
                fail("depth \(d) value under maxDepth \(maxDepth) gave \(show(outcome))")
            }
        }
    case (.failure(let expected), .failure(let error)):
        if error != expected && !(error.kind == .tooDeep && error.offset <= expected.offset) {
            fail("maxDepth \(maxDepth) gave \(show(outcome)), maxDepth \(referenceDepth) gave \(show(reference))")
        }
    case (.failure, .success):
        fail("maxDepth \(maxDepth) accepted what maxDepth \(referenceDepth) refused: \(show(reference))")
    }
}

func checkRoundTrip(_ value: JSONValue) {
    let text = JSONWriter.serialize(value)
    var writer = JSONWriter()
    writer.value(value)
    let bytes = writer.bytes
    if Array(text.utf8) != bytes { fail("serialize and value(_:) differ for \(text.prefix(200))") }
    if let raw = bytes.firstIndex(where: { $0 < 0x20 }) {
        fail("JSONWriter left control byte \(bytes[raw]) unescaped at \(raw) in \(text.prefix(200))")
    }
    switch parse(bytes, maxDepth: referenceDepth) {
    case .success(let again):
        if again != value { fail("round trip changed the value: wrote \(text.prefix(200)), read \(show(.success(again)))") }
        let rewritten = JSONWriter.serialize(again)
        // Bytes, not String ==, which would accept canonically equivalent text.
        if Array(rewritten.utf8) != bytes { fail("writer not canonical: \(text.prefix(200)) then \(rewritten.prefix(200))") }
    case .failure(let error):
        fail("JSONWriter output does not parse (\(error.kind) at \(error.offset)): \(text.prefix(200))")
    }
}

func isNumberByte(_ b: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+")
        || b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
}

/// A proper prefix of a valid document: parses, or runs out of input.
func checkPrefix(_ document: [UInt8], length: Int) {
    let prefix = Array(document[..<length])
    let outcome = parse(prefix, maxDepth: referenceDepth)
    checkOffset(outcome, count: length, "prefix")
    guard case .failure(let error) = outcome, error.kind != .unexpectedEnd else { return }
    // A complete number on its own that overflows a Double.
    if error.kind == .invalidNumber, length > error.offset, prefix[error.offset...].allSatisfy(isNumberByte) { return }
    fail("""
        prefix of \(length) bytes of a valid \(document.count)-byte document failed with \(error.kind) at \
        \(error.offset), not unexpectedEnd: …\(String(decoding: prefix.suffix(40), as: UTF8.self))
        """)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let reference = parse(input, maxDepth: referenceDepth)
    checkOffset(reference, count: size, "maxDepth \(referenceDepth)")

    // Depth limit, the defaults included.
    for maxDepth in depthLimits {
        let outcome = parse(input, maxDepth: maxDepth, maxSize: JSONParser.defaultMaxSize)
        checkOffset(outcome, count: size, "maxDepth \(maxDepth)")
        checkDepth(outcome, maxDepth: maxDepth, reference: reference)
    }
    let defaults = Result { () throws(JSONParseError) in try JSONParser.parse(input) }
    if defaults != parse(input, maxDepth: JSONParser.defaultMaxDepth, maxSize: JSONParser.defaultMaxSize) {
        fail("parse(_:) with default limits differs from explicit defaults")
    }

    // Size limit: exactly the input's size is enough, one byte less is not.
    if parse(input, maxDepth: referenceDepth, maxSize: size) != reference {
        fail("maxSize \(size) (the input's size) changed the result")
    }
    if size > 0, parse(input, maxDepth: referenceDepth, maxSize: size - 1) != .failure(JSONParseError(.tooLarge, at: 0)) {
        fail("maxSize \(size - 1) for a \(size)-byte input is not tooLarge at 0")
    }

    // The String overload, on valid UTF-8.
    let text = String(validating: input, as: UTF8.self)
    if let text, Result(catching: { () throws(JSONParseError) in try JSONParser.parse(text, maxDepth: referenceDepth, maxSize: Int.max) }) != reference {
        fail("parse(String) differs from parse([UInt8])")
    }

    guard case .success(let value) = reference else { return 0 }
    if text == nil { fail("accepted invalid UTF-8") }
    if let b = input.first(where: { $0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) {
        fail("accepted raw control byte \(b)")
    }
    checkRoundTrip(value)

    // Prefixes: all of them for small documents, an even sample of large ones.
    let step = size <= 1024 ? 1 : size / 256
    for length in stride(from: 0, to: size, by: step) { checkPrefix(input, length: length) }
    for length in max(0, size - 16)..<size { checkPrefix(input, length: length) }
    return 0
}

/// main(), as SwiftPM links it: libFuzzer's driver on `fuzz`.
@_cdecl("fuzz_json_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    relay_fuzz_main(argc, argv) { data, size in
        if let data { return fuzz(data, size) }
        var empty: UInt8 = 0
        return withUnsafePointer(to: &empty) { fuzz($0, 0) }
    }
}
