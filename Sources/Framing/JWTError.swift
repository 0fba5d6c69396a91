public enum JWTError: Error, Equatable, Sendable {
    case malformed
    case unsupportedAlgorithm(String)
    case badSignature
    case expired
    case notYetValid
    case missingExpiry
    case wrongIssuer

    /// A short plain-text reason, safe to send to the client.
    public var message: String {
        switch self {
        case .malformed: "malformed token"
        case .unsupportedAlgorithm: "unsupported token algorithm"
        case .badSignature: "invalid token signature"
        case .expired: "token expired"
        case .notYetValid: "token not valid yet"
        case .missingExpiry: "token has no expiry"
        case .wrongIssuer: "wrong token issuer"
        }
    }
}
