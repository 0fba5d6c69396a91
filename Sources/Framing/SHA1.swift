import COpenSSL

/// SHA-1 via OpenSSL; used only for the WebSocket accept value (RFC 6455 §4.2.2).
public enum SHA1 {
    public static let digestLength = 20

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            EVP_Digest(input.baseAddress, input.count, &digest, &length, EVP_sha1(), nil)
        }
        // EVP_Digest fails only on allocation failure or a missing algorithm.
        precondition(ok == 1 && length == UInt32(digestLength), "OpenSSL SHA-1 failed")
        return Array(digest[0..<digestLength])
    }
}
