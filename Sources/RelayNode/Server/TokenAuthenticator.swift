import Glibc
import Framing

/// Which side of a pod a connection is.
enum PodRole: String, Sendable { case runner, browser }

/// Who a verified token says the connection is.
struct Identity: Sendable {
    let podKey: String
    let role: PodRole
    /// `scope: "read"`: a viewer whose input is refused.
    let readOnly: Bool
}

/// Verifies the token of an upgrade request (AgentsMesh rules, docs/protocol.md §4
/// "Token"): from `?token=` or `Authorization: Bearer`, HMAC-checked against
/// every configured secret, `exp` required, issuer checked, role by
/// endpoint. Every refusal is a 401 with a short reason; the token itself
/// is never logged.
struct TokenAuthenticator: Sendable {
    let verifier: JWTVerifier

    init(secrets: [[UInt8]], issuer: String?) {
        verifier = JWTVerifier(secrets: secrets, issuer: issuer)
    }

    static func token(from head: HTTPRequestHead) -> String? {
        if let t = head.queryValue("token"), !t.isEmpty { return t }
        if let auth = head.headers["authorization"] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2 && parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingSpaces }
        }
        return nil
    }

    /// `endpoint`: the role the path serves (nil: whatever the claims say, for gRPC).
    func authenticate(_ head: HTTPRequestHead, endpoint: PodRole?, now: Int64 = Int64(time(nil))) -> Result<Identity, HTTPHeadError> {
        guard let token = Self.token(from: head) else { return .failure(Self.refusal("missing token")) }
        let claims: JWTClaims
        switch verifier.verify(token, now: now) {
        case .failure(let e): return .failure(Self.refusal(e.message))
        case .success(let c): claims = c
        }
        guard let podKey = claims.podKey, !podKey.isEmpty else { return .failure(Self.refusal("missing pod_key")) }
        let role: PodRole
        switch claims.role {
        case "runner": role = .runner
        case "browser": role = .browser
        case nil: role = (claims.userID ?? 0) == 0 ? .runner : .browser
        default: return .failure(Self.refusal("invalid token type"))
        }
        // The original answers 401 for the wrong role as well.
        guard endpoint == nil || role == endpoint else { return .failure(Self.refusal("invalid token type")) }
        return .success(Identity(podKey: podKey, role: role, readOnly: claims.scope == "read"))
    }

    static func refusal(_ reason: String) -> HTTPHeadError {
        HTTPHeadError(status: 401, reason: reason)
    }
}
