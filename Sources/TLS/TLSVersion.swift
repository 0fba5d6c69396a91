import COpenSSL

/// The oldest TLS version a context accepts (1.2 or 1.3; older ones never).
public enum TLSVersion: String, Sendable, CaseIterable {
    case v1_2 = "1.2"
    case v1_3 = "1.3"

    var openSSL: Int32 {
        switch self {
        case .v1_2: return TLS1_2_VERSION
        case .v1_3: return TLS1_3_VERSION
        }
    }
}

/// A certificate, key or CA file that could not be used, worded for the
/// person who configured it (the caller adds which setting named the file).
public struct TLSConfigurationError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}
