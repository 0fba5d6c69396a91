/// The JWS "alg" values accepted (RFC 7518 §3.2). Everything else, "none"
/// and asymmetric algorithms included, is refused.
enum JWTAlgorithm {
    static func hmac(for alg: String) -> HMACAlgorithm? {
        switch alg {
        case "HS256": .sha256
        case "HS384": .sha384
        case "HS512": .sha512
        default: nil
        }
    }
}
