import Testing
@testable import Framing

@Suite struct JWTTests {
    static let secret = Array("relay-secret".utf8)
    static let claims = JWTClaims(podKey: "pod-1", runnerID: 7, userID: 42, orgID: 3, exp: 2_000_000_000,
                                  iat: 1_700_000_000, nbf: 1_700_000_000, iss: "agentsmesh", sub: "pod-1")
    static let now: Int64 = 1_800_000_000

    // Produced by Python's hmac/base64 from the same header and payload text.
    static let independent: [(String, String)] = [
        ("HS256", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJwb2Rfa2V5IjoicG9kLTEiLCJydW5uZXJfaWQiOjcsInVzZXJfaWQiOjQyLCJvcmdfaWQiOjMsImlzcyI6ImFnZW50c21lc2giLCJzdWIiOiJwb2QtMSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDB9.oWx2QL5TvOHXHYv1FNEQz4Cgm3f2X37zwfiMFKxk6jE"),
        ("HS384", "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyJwb2Rfa2V5IjoicG9kLTEiLCJydW5uZXJfaWQiOjcsInVzZXJfaWQiOjQyLCJvcmdfaWQiOjMsImlzcyI6ImFnZW50c21lc2giLCJzdWIiOiJwb2QtMSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDB9.gl-Bb1cHQCqg_HgT_IIDICBGLc_BZNDUauKmYk7U1nqClPQD6ZC3yeClujAGKlbF"),
        ("HS512", "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJwb2Rfa2V5IjoicG9kLTEiLCJydW5uZXJfaWQiOjcsInVzZXJfaWQiOjQyLCJvcmdfaWQiOjMsImlzcyI6ImFnZW50c21lc2giLCJzdWIiOiJwb2QtMSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDB9.rphXvon874-bE17Q2KRs545IFI7wr7nxMj72ipXWFJ_amlOY-oabpZ3oJw-j_g5hvpk-zkMzRWLRs0Ao-CqHnw"),
    ]

    static let jwtIOExample = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

    let verifier = JWTVerifier(secrets: [JWTTests.secret], issuer: "agentsmesh")

    /// A token with arbitrary header/payload JSON, signed with HS256.
    func token(header: String = #"{"alg":"HS256"}"#, payload: String, secret: [UInt8] = JWTTests.secret) -> String {
        let input = Base64.encodeURL(Array(header.utf8)) + "." + Base64.encodeURL(Array(payload.utf8))
        return input + "." + Base64.encodeURL(HMAC.authenticationCode(for: Array(input.utf8), key: secret, algorithm: .sha256))
    }

    @Test func signerMatchesIndependentImplementation() {
        for (alg, expected) in Self.independent {
            #expect(JWTSigner.sign(Self.claims, secret: Self.secret, algorithm: alg) == expected, "\(alg)")
        }
        #expect(JWTSigner.sign(Self.claims, secret: Self.secret) == Self.independent[0].1)
    }

    @Test func verifiesIndependentTokens() {
        for (alg, token) in Self.independent {
            #expect(verifier.verify(token, now: Self.now) == .success(Self.claims), "\(alg)")
        }
    }

    @Test func roundTripWithScopeAndRole() {
        let claims = JWTClaims(podKey: "p", userID: -5, exp: 100, sub: "s", scope: "read write", role: "viewer")
        for alg in ["HS256", "HS384", "HS512"] {
            let token = JWTSigner.sign(claims, secret: Self.secret, algorithm: alg)
            #expect(JWTVerifier(secrets: [Self.secret], issuer: nil).verify(token, now: 99) == .success(claims))
        }
    }

    @Test func jwtIOExampleSignatureVerifiesButHasNoExpiry() {
        let v = JWTVerifier(secrets: [Array("your-256-bit-secret".utf8)], issuer: nil)
        #expect(v.verify(Self.jwtIOExample, now: 1_516_239_022) == .failure(.missingExpiry))
        let wrongKey = JWTVerifier(secrets: [Array("not-the-secret".utf8)], issuer: nil)
        #expect(wrongKey.verify(Self.jwtIOExample, now: 1_516_239_022) == .failure(.badSignature))
    }

    @Test func tamperedPayloadIsBadSignature() {
        let parts = Self.independent[0].1.split(separator: ".").map(String.init)
        let forged = Base64.encodeURL(Array(#"{"pod_key":"other","exp":2000000000,"iss":"agentsmesh"}"#.utf8))
        #expect(verifier.verify(parts[0] + "." + forged + "." + parts[2], now: Self.now) == .failure(.badSignature))
        // Signature from a different algorithm's token.
        let hs512Sig = Self.independent[2].1.split(separator: ".")[2]
        #expect(verifier.verify(parts[0] + "." + parts[1] + "." + hs512Sig, now: Self.now) == .failure(.badSignature))
    }

    @Test func refusedAlgorithms() {
        let payload = Base64.encodeURL(Array(#"{"exp":2000000000}"#.utf8))
        let none = Base64.encodeURL(Array(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + payload + "."
        #expect(verifier.verify(none, now: 0) == .failure(.unsupportedAlgorithm("none")))
        let rs = Base64.encodeURL(Array(#"{"alg":"RS256"}"#.utf8)) + "." + payload + ".c2ln"
        #expect(verifier.verify(rs, now: 0) == .failure(.unsupportedAlgorithm("RS256")))
        let lower = Base64.encodeURL(Array(#"{"alg":"hs256"}"#.utf8)) + "." + payload + ".c2ln"
        #expect(verifier.verify(lower, now: 0) == .failure(.unsupportedAlgorithm("hs256")))
    }

    @Test func malformedTokens() {
        let good = Self.independent[0].1
        let cases = [
            "", "a.b", "a.b.c.d", good + ".", "." + good,
            good.replacingFirstDot(with: "=."),                      // padding
            token(header: #"{"typ":"JWT"}"#, payload: #"{"exp":1}"#),    // no alg
            token(header: #"{"alg":256}"#, payload: #"{"exp":1}"#),      // alg not a string
            token(header: #"["HS256"]"#, payload: #"{"exp":1}"#),        // header not an object
            token(header: #"{"alg":"HS256","alg":"none"}"#, payload: #"{"exp":1}"#),
            String(repeating: "a", count: JWTVerifier.maxTokenLength + 1),
        ]
        for t in cases { #expect(verifier.verify(t, now: 0) == .failure(.malformed), "\(t.prefix(60))") }
    }

    @Test func malformedPayloadIsCheckedAfterSignature() {
        let v = JWTVerifier(secrets: [Self.secret], issuer: nil)
        for payload in [#"[1]"#, #"{"exp":"soon"}"#, #"{"exp":1e300}"#, #"{"exp":9,"runner_id":1.5}"#,
                        #"{"exp":9,"pod_key":7}"#, #"{"exp":9,"iss":null,"iss":"x"}"#, "{"] {
            #expect(v.verify(token(payload: payload), now: 0) == .failure(.malformed), "\(payload)")
            #expect(v.verify(token(payload: payload, secret: [1]), now: 0) == .failure(.badSignature), "\(payload)")
        }
    }

    @Test func claimConversions() {
        let v = JWTVerifier(secrets: [Self.secret], issuer: nil)
        let t = token(payload: #"{"exp":100.9,"iat":-1.5,"runner_id":1e3,"user_id":null,"org_id":-0,"extra":{"x":[1]}}"#)
        #expect(v.verify(t, now: 99) == .success(JWTClaims(runnerID: 1000, orgID: 0, exp: 100, iat: -1)))
    }

    @Test func expiryBoundaries() {
        let claims = JWTClaims(exp: 1000, iss: "agentsmesh")
        let t = JWTSigner.sign(claims, secret: Self.secret)
        #expect(verifier.verify(t, now: 999) == .success(claims))
        #expect(verifier.verify(t, now: 1000) == .failure(.expired))
        let lenient = JWTVerifier(secrets: [Self.secret], issuer: "agentsmesh", leewaySeconds: 30)
        #expect(lenient.verify(t, now: 1029) == .success(claims))
        #expect(lenient.verify(t, now: 1030) == .failure(.expired))
        #expect(verifier.verify(JWTSigner.sign(JWTClaims(iss: "agentsmesh"), secret: Self.secret), now: 0) == .failure(.missingExpiry))
        // Leeway added to a huge exp saturates instead of overflowing.
        let farLenient = JWTVerifier(secrets: [Self.secret], issuer: nil, leewaySeconds: .max)
        let far = JWTClaims(exp: 1 << 53)
        #expect(farLenient.verify(JWTSigner.sign(far, secret: Self.secret), now: .max - 1) == .success(far))
        // Beyond Int64 (as a Double) is refused rather than wrapped.
        #expect(verifier.verify(token(payload: #"{"exp":9223372036854775808,"iss":"agentsmesh"}"#), now: 0) == .failure(.malformed))
    }

    @Test func notBefore() {
        let claims = JWTClaims(exp: 2000, nbf: 1000, iss: "agentsmesh")
        let t = JWTSigner.sign(claims, secret: Self.secret)
        #expect(verifier.verify(t, now: 999) == .failure(.notYetValid))
        #expect(verifier.verify(t, now: 1000) == .success(claims))
        let lenient = JWTVerifier(secrets: [Self.secret], issuer: nil, leewaySeconds: 5)
        #expect(lenient.verify(t, now: 995) == .success(claims))
        #expect(lenient.verify(t, now: 994) == .failure(.notYetValid))
    }

    @Test func issuer() {
        let wrong = JWTSigner.sign(JWTClaims(exp: 2000, iss: "someone-else"), secret: Self.secret)
        let missing = JWTSigner.sign(JWTClaims(exp: 2000), secret: Self.secret)
        #expect(verifier.verify(wrong, now: 0) == .failure(.wrongIssuer))
        #expect(verifier.verify(missing, now: 0) == .failure(.wrongIssuer))
        for unchecked in [JWTVerifier(secrets: [Self.secret], issuer: nil), JWTVerifier(secrets: [Self.secret], issuer: "")] {
            #expect(unchecked.verify(wrong, now: 0) == .success(JWTClaims(exp: 2000, iss: "someone-else")))
            #expect(unchecked.verify(missing, now: 0) == .success(JWTClaims(exp: 2000)))
        }
    }

    @Test func secretRotation() {
        let old = Array("old-secret".utf8)
        let new = Array("new-secret".utf8)
        let v = JWTVerifier(secrets: [old, new], issuer: nil)
        let claims = JWTClaims(podKey: "p", exp: 10)
        #expect(v.verify(JWTSigner.sign(claims, secret: new), now: 0) == .success(claims))
        #expect(v.verify(JWTSigner.sign(claims, secret: old, algorithm: "HS512"), now: 0) == .success(claims))
        #expect(v.verify(JWTSigner.sign(claims, secret: Array("other".utf8)), now: 0) == .failure(.badSignature))
    }

    @Test func emptySecretsNeverVerify() {
        let claims = JWTClaims(exp: 10)
        #expect(JWTVerifier(secrets: [[]], issuer: nil).verify(JWTSigner.sign(claims, secret: []), now: 0) == .failure(.badSignature))
        #expect(JWTVerifier(secrets: [], issuer: nil).verify(JWTSigner.sign(claims, secret: Self.secret), now: 0) == .failure(.badSignature))
    }

    @Test func messages() {
        #expect(JWTError.expired.message == "token expired")
        #expect(JWTError.unsupportedAlgorithm("none").message == "unsupported token algorithm")
        #expect(JWTError.badSignature.message == "invalid token signature")
    }
}

private extension String {
    func replacingFirstDot(with replacement: String) -> String {
        guard let i = firstIndex(of: ".") else { return self }
        return self[..<i] + replacement + self[index(after: i)...]
    }
}
