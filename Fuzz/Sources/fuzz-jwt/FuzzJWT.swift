// libFuzzer target: JWTVerifier (structure, algorithm, HMAC signature,
// claims decoding and checks) and Base64 on arbitrary bytes.
//
// Each input is used four ways:
//   1. as a token, verified under four verifier configurations (rotation
//      with two secrets, an empty secret that must be dropped, issuer set /
//      "" / nil, leeway 0 / 30 / Int64.max / negative) at several times;
//   2. as a payload: `header.base64url(input).signature`, signed with the
//      configured secret (HS256/384/512 by the input's length), with a second
//      configured secret, with a secret that is not configured and with an
//      empty one. This reaches the claims decoder with arbitrary JSON;
//   3. as a header over fixed valid claims, signed with the algorithm the
//      header names (HS256 when it names none);
//   4. as text for Base64.decodeURL / decode, and as bytes for
//      encodeURL / encode.
//
// Besides crashes and AddressSanitizer reports, it traps when:
//   - verify's answer differs from a model of JWTVerifier's documentation
//     computed here on the token's bytes: split at '.' bytes, each part
//     base64url-decoded, header JSON with a string "alg", HS256/384/512, the
//     HMAC (project's HMAC) over the bytes before the second '.' equal to the
//     signature for some non-empty secret, payload JSON decoded into claims
//     by the rules JWTClaimsCoding states (null = absent; a wrong type, a
//     non-integral id or a value outside Int64 = malformed; dates truncated
//     toward zero; unknown members ignored), then exp
//     required, now < exp + leeway, now >= nbf - leeway (both saturating),
//     issuer. Times tried: 0, 1.8e9, Int64.min/max for the input as a token,
//     1.8e9 for the tokens built around it, and for each token that gets to
//     its claims, both sides of its exp and nbf boundaries;
//   - a success whose signature part is not base64url(HMAC(signing input))
//     for a configured secret, whose exp is missing or past, whose nbf is in
//     the future or whose issuer differs; or whose claims, re-signed with
//     JWTSigner, do not verify to the same claims;
//   - a token verifies that was signed with an unconfigured or empty
//     secret, or whose signature was emptied, cut, lengthened or computed
//     with another algorithm; or a validly signed fuzzed payload is refused
//     before its claims (badSignature / unsupportedAlgorithm);
//   - Base64: a decoded text does not re-encode to itself, an encoding
//     differs from a bit-by-bit reference encoder, or does not decode back.
// FUZZ_VERBOSE=1 prints what each token verifies to (for reproducing).
import Framing
import FuzzDriver
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    fatalError("fuzz-jwt: invariant violated: \(message)")
}

let verbose = getenv("FUZZ_VERBOSE") != nil

// The seeds in Fuzz/corpus/jwt are signed with these (Fuzz/corpus/make-seeds.py).
let secretA = Array("relay-fuzz-secret".utf8)
let secretB = Array("relay-fuzz-rotated-secret".utf8)
let outsider = Array("not-a-configured-secret".utf8)

/// A verifier and what its initializer documents about its arguments.
struct Config {
    let name: String
    let verifier: JWTVerifier
    /// Empty secrets dropped.
    let secrets: [[UInt8]]
    /// nil or "" → nil.
    let issuer: String?
    /// Negative → 0.
    let leeway: Int64

    init(_ name: String, secrets: [[UInt8]], issuer: String?, leeway: Int64) {
        self.name = name
        verifier = JWTVerifier(secrets: secrets, issuer: issuer, leewaySeconds: leeway)
        self.secrets = secrets.filter { !$0.isEmpty }
        self.issuer = issuer == "" ? nil : issuer
        self.leeway = max(leeway, 0)
    }
}

let configs = [
    Config("A+B, iss agentsmesh", secrets: [secretA, secretB], issuer: "agentsmesh", leeway: 0),
    Config("B+empty+A, iss \"\", leeway 30", secrets: [secretB, [], secretA], issuer: "", leeway: 30),
    Config("A, no iss, leeway max", secrets: [secretA], issuer: nil, leeway: .max),
    Config("empty only, leeway -5", secrets: [[]], issuer: nil, leeway: -5),
]
let fixedNows: [Int64] = [0, 1_800_000_000, .max, .min]

/// Exact sum, clamped to Int64.
func clampedSum(_ a: Int64, _ b: Int64) -> Int64 { Int64(clamping: Int128(a) + Int128(b)) }

func parseJSON(_ bytes: [UInt8]) -> JSONValue? { try? JSONParser.parse(bytes) }

func decodePart(_ part: ArraySlice<UInt8>) -> [UInt8]? { Base64.decodeURL(String(decoding: part, as: UTF8.self)) }

func algorithm(named alg: String) -> HMACAlgorithm? {
    switch alg {
    case "HS256": .sha256
    case "HS384": .sha384
    case "HS512": .sha512
    default: nil
    }
}

/// The claims, by the rules JWTClaimsCoding states, written independently.
func modelClaims(_ payload: JSONValue) -> JWTClaims? {
    guard case .object(let members) = payload else { return nil }
    var claims = JWTClaims()
    for (key, value) in members {  // keys are unique: the parser refuses duplicates
        if case .null = value { continue }
        switch key {
        case "pod_key", "iss", "sub", "scope", "role":
            guard case .string(let s) = value else { return nil }
            switch key {
            case "pod_key": claims.podKey = s
            case "iss": claims.iss = s
            case "sub": claims.sub = s
            case "scope": claims.scope = s
            default: claims.role = s
            }
        case "runner_id", "user_id", "org_id":
            guard case .number(let d) = value, let n = Int64(exactly: d) else { return nil }
            switch key {
            case "runner_id": claims.runnerID = n
            case "user_id": claims.userID = n
            default: claims.orgID = n
            }
        case "exp", "iat", "nbf":
            guard case .number(let d) = value, let n = Int64(exactly: d.rounded(.towardZero)) else { return nil }
            switch key {
            case "exp": claims.exp = n
            case "iat": claims.iat = n
            default: claims.nbf = n
            }
        default:
            continue
        }
    }
    return claims
}

/// The token split on '.' bytes, with the signing input and the algorithm.
struct Parts {
    var signingInput: [UInt8]
    var signaturePart: ArraySlice<UInt8>
    var alg: String
    var payload: [UInt8]
    var signature: [UInt8]
}

enum Stage {
    case refused(JWTError)
    case parts(Parts)
}

/// Structure and algorithm, independent of the configuration.
func modelStructure(_ token: [UInt8]) -> Stage {
    guard token.count <= JWTVerifier.maxTokenLength else { return .refused(.malformed) }
    let parts = token.split(separator: UInt8(ascii: "."), maxSplits: .max, omittingEmptySubsequences: false)
    guard parts.count == 3,
          let header = decodePart(parts[0]), let payload = decodePart(parts[1]),
          let signature = decodePart(parts[2]),
          let headerJSON = parseJSON(header), case .object = headerJSON,
          case .string(let alg)? = headerJSON["alg"] else {
        return .refused(.malformed)
    }
    guard algorithm(named: alg) != nil else { return .refused(.unsupportedAlgorithm(alg)) }
    return .parts(Parts(signingInput: Array(token[..<parts[1].endIndex]), signaturePart: parts[2], alg: alg,
                        payload: payload, signature: signature))
}

/// Signature and claims decoding: the claims, or the error, before the time
/// and issuer checks.
func modelClaimsStage(_ stage: Stage, _ config: Config) -> Result<JWTClaims, JWTError> {
    let p: Parts
    switch stage {
    case .refused(let error): return .failure(error)
    case .parts(let parts): p = parts
    }
    let hmac = algorithm(named: p.alg)!
    guard config.secrets.contains(where: { HMAC.authenticationCode(for: p.signingInput, key: $0, algorithm: hmac) == p.signature })
    else { return .failure(.badSignature) }
    guard let payload = parseJSON(p.payload), let claims = modelClaims(payload) else { return .failure(.malformed) }
    return .success(claims)
}

func modelChecks(_ claims: JWTClaims, _ config: Config, now: Int64) -> Result<JWTClaims, JWTError> {
    guard let exp = claims.exp else { return .failure(.missingExpiry) }
    guard now < clampedSum(exp, config.leeway) else { return .failure(.expired) }
    if let nbf = claims.nbf, now < clampedSum(nbf, -config.leeway) { return .failure(.notYetValid) }
    if let issuer = config.issuer, claims.iss != issuer { return .failure(.wrongIssuer) }
    return .success(claims)
}

/// Both sides of the exp and nbf boundaries.
func boundaryNows(_ claims: JWTClaims, _ config: Config) -> [Int64] {
    var nows: [Int64] = []
    if let exp = claims.exp {
        let end = clampedSum(exp, config.leeway)
        nows += [clampedSum(end, -1), end]
    }
    if let nbf = claims.nbf {
        let start = clampedSum(nbf, -config.leeway)
        nows += [clampedSum(start, -1), start]
    }
    return nows
}

func show(_ r: Result<JWTClaims, JWTError>) -> String {
    switch r {
    case .success(let c): "success(\(c))"
    case .failure(let e): "failure(\(e))"
    }
}

/// What must hold of any success, checked directly on the token.
func checkSuccess(_ token: String, _ claims: JWTClaims, _ config: Config, now: Int64, _ label: String) {
    guard let exp = claims.exp else { fail("\(label): success without exp") }
    if now >= clampedSum(exp, config.leeway) { fail("\(label): success at \(now) with exp \(exp), leeway \(config.leeway)") }
    if let nbf = claims.nbf, now < clampedSum(nbf, -config.leeway) {
        fail("\(label): success at \(now) with nbf \(nbf), leeway \(config.leeway)")
    }
    if let issuer = config.issuer, claims.iss != issuer { fail("\(label): success with iss \(String(describing: claims.iss))") }
    guard case .parts(let p) = modelStructure(Array(token.utf8)) else { fail("\(label): success for a malformed token") }
    let hmac = algorithm(named: p.alg)!
    let signature = String(decoding: p.signaturePart, as: UTF8.self)
    guard let secret = config.secrets.first(where: {
        Base64.encodeURL(HMAC.authenticationCode(for: p.signingInput, key: $0, algorithm: hmac)) == signature
    }) else {
        fail("\(label): success, but the signature part is not base64url(HMAC-\(p.alg)) under a configured secret")
    }
    let resigned = JWTSigner.sign(claims, secret: secret, algorithm: p.alg)
    let again = config.verifier.verify(resigned, now: now)
    if again != .success(claims) { fail("\(label): claims \(claims) re-signed with JWTSigner verify to \(show(again))") }
}

/// verify against the model, under each configuration, at the fixed times
/// and at the boundaries of the token's own exp and nbf.
func checkToken(_ token: String, configs: [Config], nows: [Int64], _ label: String) {
    let structure = modelStructure(Array(token.utf8))
    for config in configs {
        let decoded = modelClaimsStage(structure, config)
        var times = nows
        if case .success(let claims) = decoded { times += boundaryNows(claims, config) }
        for now in times {
            let expected = decoded.flatMap { modelChecks($0, config, now: now) }
            let actual = config.verifier.verify(token, now: now)
            if verbose { print("fuzz-jwt: \(label) [\(config.name)] now \(now): \(show(actual))") }
            if actual != expected {
                fail("\(label) [\(config.name)] now \(now): verify gave \(show(actual)), expected \(show(expected)); token \(token.prefix(300))")
            }
            if case .success(let claims) = actual { checkSuccess(token, claims, config, now: now, "\(label) [\(config.name)]") }
        }
    }
}

func sign(header: [UInt8], payload: [UInt8], secret: [UInt8], algorithm: HMACAlgorithm) -> String {
    let input = Base64.encodeURL(header) + "." + Base64.encodeURL(payload)
    return input + "." + Base64.encodeURL(HMAC.authenticationCode(for: Array(input.utf8), key: secret, algorithm: algorithm))
}

let algorithms: [(String, HMACAlgorithm)] = [("HS256", .sha256), ("HS384", .sha384), ("HS512", .sha512)]
let fixedPayload = Array(#"{"pod_key":"pod-1","exp":2000000000,"nbf":1700000000,"iss":"agentsmesh"}"#.utf8)

/// The input as the payload of tokens signed with each kind of secret.
func checkPayload(_ input: [UInt8]) {
    let (alg, hmac) = algorithms[input.count % 3]
    let header = Array(#"{"alg":"\#(alg)","typ":"JWT"}"#.utf8)
    let label = "payload \(alg)"

    // A configured secret: the payload is decoded, whatever it holds.
    let token = sign(header: header, payload: input, secret: secretA, algorithm: hmac)
    switch configs[0].verifier.verify(token, now: 0) {
    case .failure(.badSignature), .failure(.unsupportedAlgorithm):
        fail("\(label): validly signed token refused before its claims")
    default: break
    }
    checkToken(token, configs: configs, nows: [1_800_000_000], label + " secret A")

    // The same token with its signature emptied, cut, lengthened or taken
    // from another algorithm (changes that random mutation rarely makes).
    let signingInput = token[..<token.lastIndex(of: ".")!]
    let mac = HMAC.authenticationCode(for: Array(signingInput.utf8), key: secretA, algorithm: hmac)
    let other = HMAC.authenticationCode(for: Array(signingInput.utf8), key: secretA,
                                        algorithm: hmac == .sha256 ? .sha512 : .sha256)
    for signature in [[], Array(mac.dropLast(3)), mac + [0, 0, 0], Array(other.prefix(mac.count)), other] {
        let tampered = signingInput + "." + Base64.encodeURL(signature)
        if case .success = configs[0].verifier.verify(tampered, now: 1_800_000_000) {
            fail("\(label): verified with a \(signature.count)-byte signature that is not the HMAC: \(tampered.prefix(300))")
        }
    }
    checkToken(sign(header: header, payload: input, secret: secretB, algorithm: hmac),
               configs: [configs[0]], nows: [1_800_000_000], label + " secret B")

    // Signature checked before the claims: refused whatever the payload says.
    for (name, secret) in [("unconfigured", outsider), ("empty", [UInt8]())] {
        let forged = sign(header: header, payload: input, secret: secret, algorithm: hmac)
        for config in configs {
            if case .success(let claims) = config.verifier.verify(forged, now: 1_800_000_000) {
                fail("\(label) [\(config.name)]: token signed with the \(name) secret verified to \(claims)")
            }
        }
        checkToken(forged, configs: [configs[0]], nows: [1_800_000_000], "\(label) \(name) secret")
    }
}

/// The input as a header over fixed claims, signed with the algorithm it names.
func checkHeader(_ input: [UInt8]) {
    var hmac = HMACAlgorithm.sha256
    if let header = parseJSON(input), case .string(let alg)? = header["alg"], let named = algorithm(named: alg) {
        hmac = named
    }
    let token = sign(header: input, payload: fixedPayload, secret: secretA, algorithm: hmac)
    checkToken(token, configs: [configs[0], configs[2]], nows: [1_800_000_000], "header")
}

/// RFC 4648 §4/§5 one bit at a time.
func referenceEncode(_ bytes: [UInt8], url: Bool) -> [UInt8] {
    let alphabet = Array(("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + (url ? "-_" : "+/")).utf8)
    let bitCount = bytes.count * 8
    var out: [UInt8] = []
    for start in stride(from: 0, to: bitCount, by: 6) {
        var symbol = 0
        for bit in start..<start + 6 {
            symbol = symbol << 1 | (bit < bitCount ? Int(bytes[bit / 8] >> (7 - bit % 8)) & 1 : 0)
        }
        out.append(alphabet[symbol])
    }
    if !url { while out.count % 4 != 0 { out.append(UInt8(ascii: "=")) } }
    return out
}

func checkBase64(_ input: [UInt8]) {
    let text = String(decoding: input, as: UTF8.self)
    for url in [true, false] {
        let name = url ? "base64url" : "base64"
        if let bytes = url ? Base64.decodeURL(text) : Base64.decode(text) {
            let again = url ? Base64.encodeURL(bytes) : Base64.encode(bytes)
            if Array(again.utf8) != Array(text.utf8) { fail("\(name): \(text.prefix(100)) decodes, but re-encodes as \(again.prefix(100))") }
            if referenceEncode(bytes, url: url) != Array(text.utf8) { fail("\(name): decoded \(text.prefix(100)) to other bytes") }
        }
        let encoded = url ? Base64.encodeURL(input) : Base64.encode(input)
        if Array(encoded.utf8) != referenceEncode(input, url: url) { fail("\(name): encoding differs from the reference: \(encoded.prefix(100))") }
        if (url ? Base64.decodeURL(encoded) : Base64.decode(encoded)) != input { fail("\(name): \(encoded.prefix(100)) does not decode back") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    checkToken(String(decoding: input, as: UTF8.self), configs: configs, nows: fixedNows, "token")
    checkPayload(input)
    checkHeader(input)
    checkBase64(input)
    return 0
}

/// main(), as SwiftPM links it: libFuzzer's driver on `fuzz`.
@_cdecl("fuzz_jwt_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    relay_fuzz_main(argc, argv) { data, size in
        if let data { return fuzz(data, size) }
        var empty: UInt8 = 0
        return withUnsafePointer(to: &empty) { fuzz($0, 0) }
    }
}
