/// Produces HS256/HS384/HS512 JWS compact tokens (tests, dev mode, load generator).
public enum JWTSigner {
    /// `algorithm` must be "HS256", "HS384" or "HS512"; anything else is a
    /// programming error and traps.
    public static func sign(_ claims: JWTClaims, secret: [UInt8], algorithm: String = "HS256") -> String {
        guard let hmac = JWTAlgorithm.hmac(for: algorithm) else {
            preconditionFailure("JWTSigner: unsupported algorithm \(algorithm)")
        }
        var header = JSONWriter()
        header.beginObject()
        header.key("alg"); header.string(algorithm)
        header.key("typ"); header.string("JWT")
        header.endObject()
        let signingInput = Base64.encodeURL(header.bytes) + "." + Base64.encodeURL(claims.json)
        let signature = HMAC.authenticationCode(for: Array(signingInput.utf8), key: secret, algorithm: hmac)
        return signingInput + "." + Base64.encodeURL(signature)
    }
}
