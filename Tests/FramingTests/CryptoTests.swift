import Testing
@testable import Framing

@Suite struct CryptoTests {
    @Test func sha1() {
        // FIPS 180 examples.
        #expect(hex(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }

    @Test func hmacRFC4231Case2() {
        let key = Array("Jefe".utf8)
        let msg = Array("what do ya want for nothing?".utf8)
        #expect(hex(HMAC.authenticationCode(for: msg, key: key, algorithm: .sha256))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(hex(HMAC.authenticationCode(for: msg, key: key, algorithm: .sha384))
            == "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        #expect(hex(HMAC.authenticationCode(for: msg, key: key, algorithm: .sha512))
            == "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
    }

    @Test func hmacWithEmptyKeyAndMessage() {
        // Well-known HMAC-SHA256("", "").
        #expect(hex(HMAC.authenticationCode(for: [], key: [], algorithm: .sha256))
            == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func constantTimeEquality() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([], []))
        #expect(!ConstantTime.equals([], [0]))
    }
}
