import COpenSSL

/// The HMAC hash functions used by JWT HS256/HS384/HS512.
public enum HMACAlgorithm: Sendable, CaseIterable {
    case sha256, sha384, sha512

    public var digestLength: Int {
        switch self {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    var evp: OpaquePointer? {
        switch self {
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
    }
}

/// HMAC (RFC 2104) via OpenSSL's one-shot HMAC().
public enum HMAC {
    public static func authenticationCode(for message: [UInt8], key: [UInt8],
                                          algorithm: HMACAlgorithm) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // A one-byte stand-in keeps the key pointer non-NULL for an empty key,
        // which some OpenSSL 3 versions treat as an error.
        let keyBytes = key.isEmpty ? [0] : key
        let result = keyBytes.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                COpenSSL.HMAC(algorithm.evp, k.baseAddress, Int32(key.count),
                              m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count,
                              &mac, &length)
            }
        }
        precondition(result != nil && Int(length) == algorithm.digestLength, "OpenSSL HMAC failed")
        return Array(mac[0..<algorithm.digestLength])
    }
}
