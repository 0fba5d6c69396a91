/// Frame opcodes defined by RFC 6455 §5.2. The other values (3-7, 0xB-0xF) are reserved.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0
    case text = 1
    case binary = 2
    case close = 8
    case ping = 9
    case pong = 10

    /// Control frames (RFC 6455 §5.5) have the high bit of the opcode set.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// Close status codes (RFC 6455 §7.4.1).
public enum WebSocketCloseCode {
    public static let normal: UInt16 = 1000
    public static let goingAway: UInt16 = 1001
    public static let protocolError: UInt16 = 1002
    public static let unsupportedData: UInt16 = 1003
    public static let noStatus: UInt16 = 1005
    public static let abnormal: UInt16 = 1006
    public static let invalidPayload: UInt16 = 1007
    public static let policyViolation: UInt16 = 1008
    public static let messageTooBig: UInt16 = 1009
    public static let mandatoryExtension: UInt16 = 1010
    public static let internalError: UInt16 = 1011

    /// Whether a peer may put `code` in a close frame (RFC 6455 §7.4).
    /// 1004, 1005, 1006 and 1015 are reserved for local use and never sent;
    /// 1012-1014 (service restart, try again later, bad gateway) are accepted
    /// because IANA registered them after the RFC; 3000-4999 belong to
    /// libraries, frameworks and applications.
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}
