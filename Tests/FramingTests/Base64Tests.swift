import Testing
@testable import Framing

@Suite struct Base64Tests {
    // RFC 4648 §10 test vectors.
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test func standardVectors() {
        for (plain, encoded) in Self.vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test func urlVectorsHaveNoPadding() {
        for (plain, encoded) in Self.vectors {
            let unpadded = String(encoded.filter { $0 != "=" })
            #expect(Base64.encodeURL(Array(plain.utf8)) == unpadded)
            #expect(Base64.decodeURL(unpadded) == Array(plain.utf8))
        }
    }

    @Test func alphabetsDiffer() {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF]
        #expect(Base64.encode(bytes) == "+/+/")
        #expect(Base64.encodeURL(bytes) == "-_-_")
        #expect(Base64.decode("-_-_") == nil)
        #expect(Base64.decodeURL("+/+/") == nil)
        #expect(Base64.decodeURL("-_-_") == bytes)
    }

    @Test func allByteValuesRoundTrip() {
        let bytes = (0...255).map { UInt8($0) }
        for n in 0...bytes.count where n % 17 == 0 || n > 250 {
            let slice = Array(bytes[0..<n])
            #expect(Base64.decode(Base64.encode(slice)) == slice)
            #expect(Base64.decodeURL(Base64.encodeURL(slice)) == slice)
        }
    }

    @Test func strictStandardDecoding() {
        for bad in ["Zg", "Zg=", "Zg===", "Z===", "====", "Zm9v=", "Zm=9", "Zm 9v", "Zm9v\n", "Zh==", "Zm9=", "Zg==Zg==", "é==="] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func strictURLDecoding() {
        for bad in ["Zg==", "Z", "Zm9vY", "Zh", "Zm9", "a b", "Zg=", "*"] {
            #expect(Base64.decodeURL(bad) == nil, "\(bad)")
        }
    }
}
