import COpenSSL

public enum ConstantTime {
    /// Compares without an early exit on the first differing byte
    /// (CRYPTO_memcmp). Lengths are not secret: different lengths → false.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, pa.count) == 0
            }
        }
    }
}
