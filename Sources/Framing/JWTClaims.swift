/// The claims the relay reads from a token (AgentsMesh RelayClaims plus the
/// registered claims it uses). Unknown claims are ignored.
public struct JWTClaims: Sendable, Equatable {
    public var podKey: String?
    public var runnerID: Int64?
    public var userID: Int64?
    public var orgID: Int64?
    public var exp: Int64?
    public var iat: Int64?
    public var nbf: Int64?
    public var iss: String?
    public var sub: String?
    public var scope: String?
    public var role: String?

    public init(podKey: String? = nil, runnerID: Int64? = nil, userID: Int64? = nil, orgID: Int64? = nil,
                exp: Int64? = nil, iat: Int64? = nil, nbf: Int64? = nil, iss: String? = nil,
                sub: String? = nil, scope: String? = nil, role: String? = nil) {
        self.podKey = podKey
        self.runnerID = runnerID
        self.userID = userID
        self.orgID = orgID
        self.exp = exp
        self.iat = iat
        self.nbf = nbf
        self.iss = iss
        self.sub = sub
        self.scope = scope
        self.role = role
    }
}
