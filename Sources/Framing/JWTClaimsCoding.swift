/// JSON ⇄ JWTClaims, following Go encoding/json into the AgentsMesh claims
/// struct: a null member counts as absent, a member of the wrong type makes
/// the whole token invalid.
extension JWTClaims {
    /// Nil when `payload` is not an object or a known claim has the wrong type.
    init?(json payload: JSONValue) {
        guard case .object = payload else { return nil }
        do {
            self.init(
                podKey: try Self.string(payload["pod_key"]),
                runnerID: try Self.integer(payload["runner_id"]),
                userID: try Self.integer(payload["user_id"]),
                orgID: try Self.integer(payload["org_id"]),
                exp: try Self.numericDate(payload["exp"]),
                iat: try Self.numericDate(payload["iat"]),
                nbf: try Self.numericDate(payload["nbf"]),
                iss: try Self.string(payload["iss"]),
                sub: try Self.string(payload["sub"]),
                scope: try Self.string(payload["scope"]),
                role: try Self.string(payload["role"]))
        } catch {
            return nil
        }
    }

    /// Compact JSON with the present claims in a fixed order.
    var json: [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        func put(_ key: String, _ s: String?) { if let s { w.key(key); w.string(s) } }
        func put(_ key: String, _ n: Int64?) { if let n { w.key(key); w.integer(n) } }
        put("pod_key", podKey)
        put("runner_id", runnerID)
        put("user_id", userID)
        put("org_id", orgID)
        put("iss", iss)
        put("sub", sub)
        put("scope", scope)
        put("role", role)
        put("exp", exp)
        put("nbf", nbf)
        put("iat", iat)
        w.endObject()
        return w.bytes
    }

    struct WrongType: Error {}

    private static func string(_ v: JSONValue?) throws(WrongType) -> String? {
        switch v {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw WrongType()
        }
    }

    /// Integral numbers only (1.5 is refused, as Go refuses it for int64).
    /// Integers beyond 2^53 are not exact since JSON numbers parse as Double.
    private static func integer(_ v: JSONValue?) throws(WrongType) -> Int64? {
        switch v {
        case nil, .null?: return nil
        case .number(let d)? where d == d.rounded(.towardZero): return try inInt64Range(d)
        default: throw WrongType()
        }
    }

    /// NumericDate (RFC 7519 §2): seconds, fractions truncated like jwt-go.
    private static func numericDate(_ v: JSONValue?) throws(WrongType) -> Int64? {
        switch v {
        case nil, .null?: return nil
        case .number(let d)?: return try inInt64Range(d.rounded(.towardZero))
        default: throw WrongType()
        }
    }

    private static func inInt64Range(_ d: Double) throws(WrongType) -> Int64 {
        // 2^63 is exactly representable; Int64.max is not.
        guard d >= -9_223_372_036_854_775_808.0, d < 9_223_372_036_854_775_808.0 else { throw WrongType() }
        return Int64(d)
    }
}
