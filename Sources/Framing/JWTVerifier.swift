/// Verifies HMAC-signed JWS compact tokens (RFC 7515/7519).
///
/// Checks run in this order, so each error implies the earlier checks passed:
/// structure → algorithm → signature → claims (exp, nbf, iss). The payload
/// JSON is parsed only after the signature matched.
public struct JWTVerifier: Sendable {
    /// Longer tokens are refused as malformed before any work is done.
    public static let maxTokenLength = 8192

    private let secrets: [[UInt8]]
    private let issuer: String?
    private let leeway: Int64

    /// `secrets` are all accepted (for rotation). Empty secrets are dropped:
    /// anyone can compute an HMAC with an empty key.
    /// `issuer` nil or "" disables the issuer check.
    public init(secrets: [[UInt8]], issuer: String?, leewaySeconds: Int64 = 0) {
        self.secrets = secrets.filter { !$0.isEmpty }
        self.issuer = (issuer?.isEmpty ?? true) ? nil : issuer
        self.leeway = max(leewaySeconds, 0)
    }

    /// `now` is Unix time in seconds.
    public func verify(_ token: String, now: Int64) -> Result<JWTClaims, JWTError> {
        // Structure
        guard token.utf8.count <= Self.maxTokenLength else { return .failure(.malformed) }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerBytes = Base64.decodeURL(String(parts[0])),
              let payloadBytes = Base64.decodeURL(String(parts[1])),
              let signature = Base64.decodeURL(String(parts[2])),
              let header = try? JSONParser.parse(headerBytes),
              case .object = header,
              case .string(let alg)? = header["alg"] else {
            return .failure(.malformed)
        }

        // Algorithm
        guard let hmac = JWTAlgorithm.hmac(for: alg) else { return .failure(.unsupportedAlgorithm(alg)) }

        // Signature, over the encoded header and payload exactly as received
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        var matched = false
        for secret in secrets {
            let expected = HMAC.authenticationCode(for: signingInput, key: secret, algorithm: hmac)
            if ConstantTime.equals(expected, signature) { matched = true }
        }
        guard matched else { return .failure(.badSignature) }

        // Claims
        guard let payload = try? JSONParser.parse(payloadBytes),
              let claims = JWTClaims(json: payload) else {
            return .failure(.malformed)
        }
        guard let exp = claims.exp else { return .failure(.missingExpiry) }
        // jwt-go v5: valid while now < exp + leeway.
        guard now < exp.saturatingAdd(leeway) else { return .failure(.expired) }
        if let nbf = claims.nbf, now < nbf.saturatingAdd(-leeway) { return .failure(.notYetValid) }
        if let issuer, claims.iss != issuer { return .failure(.wrongIssuer) }
        return .success(claims)
    }
}

extension Int64 {
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }
}
