import Testing
import Framing

/// Validates `bytes` in one call; returns (validate result, isComplete).
private func validate(_ bytes: [UInt8]) -> (ok: Bool, complete: Bool) {
    var validator = UTF8Validator()
    let ok = bytes.withUnsafeBytes { validator.validate($0) }
    return (ok, validator.isComplete)
}

/// Whole-input verdict fed in pieces cut at `cuts`.
private func isValid(_ bytes: [UInt8], cuts: [Int]) -> Bool {
    var validator = UTF8Validator()
    var start = 0
    for end in cuts + [bytes.count] {
        let ok = bytes[start..<end].withUnsafeBytes { validator.validate($0) }
        if !ok { return false }
        start = end
    }
    return validator.isComplete
}

/// Index of the byte at which byte-by-byte validation first fails, or nil.
private func firstFailure(_ bytes: [UInt8]) -> Int? {
    var validator = UTF8Validator()
    for index in bytes.indices {
        if !(bytes[index...index].withUnsafeBytes { validator.validate($0) }) { return index }
    }
    return nil
}

// Markus Kuhn's UTF-8 decoder capability and stress test, plus boundaries.
private let validVectors: [[UInt8]] = [
    [],
    Array("κόσμε".utf8),
    [0x00], [0x7F],                       // first/last 1-byte
    [0xC2, 0x80], [0xDF, 0xBF],           // first/last 2-byte
    [0xE0, 0xA0, 0x80], [0xEF, 0xBF, 0xBF],   // first/last 3-byte
    [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],   // first 4-byte, U+10FFFF
    [0xED, 0x9F, 0xBF],                   // U+D7FF, just below the surrogates
    [0xEE, 0x80, 0x80],                   // U+E000, just above them
    [0xEF, 0xBF, 0xBD],                   // U+FFFD
    [0xEF, 0xBF, 0xBE],                   // U+FFFE: a noncharacter, still valid UTF-8
    [0xF1, 0x80, 0x80, 0x80], [0xF3, 0xBF, 0xBF, 0xBF],
    Array("ASCII only, long enough for the 8-byte fast path to kick in.".utf8),
    Array("mixed ascii then é then ascii again for a while 🌍 done".utf8),
]

private let invalidVectors: [(name: String, bytes: [UInt8])] = [
    ("lone continuation 80", [0x80]),
    ("lone continuation BF", [0xBF]),
    ("two continuations", [0x80, 0xBF]),
    ("continuations after ASCII", [0x41, 0x80, 0xBF, 0x80]),
    ("all 64 continuation bytes", Array(0x80...0xBF)),
    ("lonely 2-byte start then space", [0xC0, 0x20]),
    ("lonely 2-byte start DF then space", [0xDF, 0x20]),
    ("lonely 3-byte start then space", [0xE0, 0x20]),
    ("lonely 4-byte start then space", [0xF0, 0x20]),
    ("3-byte missing last then ASCII", [0xE1, 0x80, 0x41]),
    ("4-byte missing last then ASCII", [0xF1, 0x80, 0x80, 0x41]),
    ("5-byte form", [0xF8, 0x88, 0x80, 0x80, 0x80]),
    ("6-byte form", [0xFC, 0x84, 0x80, 0x80, 0x80, 0x80]),
    ("FE", [0xFE]), ("FF", [0xFF]), ("FE FE FF FF", [0xFE, 0xFE, 0xFF, 0xFF]),
    ("F5", [0xF5, 0x80, 0x80, 0x80]),
    ("overlong slash 2-byte", [0xC0, 0xAF]),
    ("overlong slash 3-byte", [0xE0, 0x80, 0xAF]),
    ("overlong slash 4-byte", [0xF0, 0x80, 0x80, 0xAF]),
    ("overlong slash 5-byte", [0xF8, 0x80, 0x80, 0x80, 0xAF]),
    ("max overlong 2-byte", [0xC1, 0xBF]),
    ("max overlong 3-byte", [0xE0, 0x9F, 0xBF]),
    ("max overlong 4-byte", [0xF0, 0x8F, 0xBF, 0xBF]),
    ("overlong NUL 2-byte", [0xC0, 0x80]),
    ("overlong NUL 3-byte", [0xE0, 0x80, 0x80]),
    ("U+D800", [0xED, 0xA0, 0x80]), ("U+DB7F", [0xED, 0xAD, 0xBF]),
    ("U+DB80", [0xED, 0xAE, 0x80]), ("U+DBFF", [0xED, 0xAF, 0xBF]),
    ("U+DC00", [0xED, 0xB0, 0x80]), ("U+DF80", [0xED, 0xBE, 0x80]),
    ("U+DFFF", [0xED, 0xBF, 0xBF]),
    ("surrogate pair", [0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80]),
    ("U+110000", [0xF4, 0x90, 0x80, 0x80]),
    ("U+1FFFFF", [0xF7, 0xBF, 0xBF, 0xBF]),
    ("invalid after long ASCII run", Array("0123456789abcdef".utf8) + [0xC0, 0x80]),
]

// Sequences cut short: not an error until the input is declared finished.
private let truncatedVectors: [[UInt8]] = [
    [0xC2], [0xDF], [0xE0, 0xA0], [0xE1], [0xED, 0x9F], [0xEF, 0xBF],
    [0xF0, 0x90], [0xF0, 0x90, 0x80], [0xF4, 0x8F, 0xBF], [0xF3],
    Array("abc".utf8) + [0xE2, 0x82],
]

@Suite struct UTF8ValidatorTests {
    @Test func acceptsValidVectors() {
        for vector in validVectors {
            let result = validate(vector)
            #expect(result.ok && result.complete, "\(vector)")
        }
    }

    @Test func rejectsInvalidVectors() {
        for (name, bytes) in invalidVectors {
            #expect(!validate(bytes).ok, "\(name)")
        }
    }

    @Test func truncatedSequencesAreIncompleteNotInvalid() {
        for vector in truncatedVectors {
            let result = validate(vector)
            #expect(result.ok && !result.complete, "\(vector)")
        }
    }

    @Test func failsAtTheFirstByteThatCannotBeCompleted() {
        #expect(firstFailure([0x80]) == 0)
        #expect(firstFailure([0xC0]) == 0)
        #expect(firstFailure([0xC1]) == 0)
        #expect(firstFailure([0xF5]) == 0)
        #expect(firstFailure([0xE0, 0x80]) == 1)   // overlong known at byte 2
        #expect(firstFailure([0xE0, 0x9F]) == 1)
        #expect(firstFailure([0xED, 0xA0]) == 1)   // surrogate known at byte 2
        #expect(firstFailure([0xF0, 0x8F]) == 1)
        #expect(firstFailure([0xF4, 0x90]) == 1)   // > U+10FFFF known at byte 2
        #expect(firstFailure([0xE2, 0x82, 0x41]) == 2)
        #expect(firstFailure([0x41, 0x42, 0xC3, 0xA9, 0xFF]) == 4)
    }

    @Test func everySplitOfEveryVectorGivesTheSameVerdict() {
        let all = validVectors.map { ($0, true) }
            + invalidVectors.map { ($0.bytes, false) }
            + truncatedVectors.map { ($0, false) }
        for (bytes, valid) in all {
            // Every two-piece split and every byte separately.
            for cut in 0...bytes.count {
                #expect(isValid(bytes, cuts: [cut]) == valid, "\(bytes) cut at \(cut)")
            }
            #expect(isValid(bytes, cuts: bytes.count > 1 ? Array(1..<bytes.count) : []) == valid)
        }
    }

    @Test func everyScalarBoundaryAgreesWithTheStandardLibrary() {
        // Every encodable scalar round-trips; every 3-byte Exx-prefixed form is checked.
        for value in stride(from: 0, through: 0x10FFFF, by: 97) {
            guard let scalar = Unicode.Scalar(UInt32(value)) else { continue }
            let bytes = Array(String(Character(scalar)).utf8)
            #expect(isValid(bytes, cuts: bytes.count > 1 ? [1] : []))
        }
        for lead in UInt8(0xE0)...0xEF {
            for second in UInt8(0x80)...0xBF {
                let bytes = [lead, second, 0x80]
                let reference = String(validating: bytes, as: UTF8.self) != nil
                #expect(isValid(bytes, cuts: [1, 2]) == reference, "\(bytes)")
            }
        }
        for lead in UInt8(0xF0)...0xF7 {
            for second in UInt8(0x80)...0xBF {
                let bytes = [lead, second, 0x80, 0x80]
                let reference = String(validating: bytes, as: UTF8.self) != nil
                #expect(isValid(bytes, cuts: [2]) == reference, "\(bytes)")
            }
        }
    }

    @Test func randomInputsAgreeWithTheStandardLibrary() {
        var random = SplitMix64(seed: 0x5EED)
        // Bytes biased towards the interesting ranges so valid inputs occur too.
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF,
                                 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5, 0xFF]
        var validSeen = 0
        for _ in 0..<20_000 {
            let length = random.next(below: 12)
            let bytes = (0..<length).map { _ in
                random.next(below: 3) == 0 ? UInt8(truncatingIfNeeded: random.next()) : alphabet[random.next(below: alphabet.count)]
            }
            let reference = String(validating: bytes, as: UTF8.self) != nil
            if reference { validSeen += 1 }
            let cut = length == 0 ? 0 : random.next(below: length + 1)
            #expect(isValid(bytes, cuts: [cut]) == reference, "\(bytes)")
        }
        #expect(validSeen > 1_000)
    }

    @Test func rejectionIsStickyUntilReset() {
        var validator = UTF8Validator()
        #expect(!([0xFF] as [UInt8]).withUnsafeBytes { validator.validate($0) })
        #expect(!Array("fine".utf8).withUnsafeBytes { validator.validate($0) })
        validator.reset()
        #expect(Array("fine".utf8).withUnsafeBytes { validator.validate($0) })
        #expect(validator.isComplete)
    }
}
