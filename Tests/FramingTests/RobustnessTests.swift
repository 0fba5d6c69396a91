import Testing
@testable import Framing

/// Mutated and random inputs must never trap or read out of bounds.
@Suite struct RobustnessTests {
    /// Deterministic xorshift so failures reproduce.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let interesting: [UInt8] = Array(" \t\r\n:%\"\\{}[],.=&?#/0aZ+-eEu\u{0}\u{7F}".utf8) + [0x80, 0xC3, 0xFF]

    func mutate(_ seed: [UInt8], _ rng: inout Random) -> [UInt8] {
        var bytes = seed
        for _ in 0..<(1 + rng.below(4)) {
            let pick = Self.interesting[rng.below(Self.interesting.count)]
            switch rng.below(3) {
            case 0 where !bytes.isEmpty: bytes[rng.below(bytes.count)] = pick
            case 1: bytes.insert(pick, at: rng.below(bytes.count + 1))
            default: if !bytes.isEmpty { bytes.remove(at: rng.below(bytes.count)) }
            }
        }
        return bytes
    }

    @Test func httpHeadParser() {
        var rng = Random(state: 0x9E37_79B9_7F4A_7C15)
        let seed = Array(HTTPRequestHeadParserTests.upgrade.utf8)
        var limits = HTTPRequestHeadLimits()
        limits.maxHeadSize = 120
        limits.maxTargetLength = 40
        for _ in 0..<5000 {
            let bytes = mutate(seed, &rng)
            _ = parseHead(bytes)
            _ = parseHead(Array(bytes.prefix(rng.below(bytes.count + 1))), limits: limits)
        }
    }

    @Test func jsonParser() throws {
        var rng = Random(state: 42)
        let seed = Array(#"{"a":[1,-2.5e3,"x\u00e9\uD83D\uDE00",true,null],"b":{"c":"\n"}}"#.utf8)
        for _ in 0..<5000 {
            let bytes = mutate(seed, &rng)
            if let value = try? JSONParser.parse(bytes) {
                // Whatever parses must survive a write/parse round trip.
                #expect(try JSONParser.parse(JSONWriter.serialize(value)) == value)
            }
        }
    }

    @Test func base64AndJWT() {
        var rng = Random(state: 7)
        let seed = Array(JWTTests.independent[0].1.utf8)
        let verifier = JWTVerifier(secrets: [JWTTests.secret], issuer: nil)
        for _ in 0..<3000 {
            let text = String(decoding: mutate(seed, &rng), as: UTF8.self)
            if case .success = verifier.verify(text, now: 0) {
                Issue.record("mutated token verified: \(text)")
            }
            if let decoded = Base64.decodeURL(text) { #expect(Base64.encodeURL(decoded) == text) }
            if let decoded = Base64.decode(text) { #expect(Base64.encode(decoded) == text) }
        }
    }
}
