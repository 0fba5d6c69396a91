/// First byte of every relay WebSocket binary message. 0x01–0x0D are the
/// AgentsMesh relay protocol; 0x20 and up are this relay's extensions.
public enum RelayFrameType: UInt8, Sendable, CaseIterable {
    case snapshot = 0x01
    case output = 0x02
    case input = 0x03
    case resize = 0x04
    case ping = 0x05
    case pong = 0x06
    case control = 0x07
    case runnerDisconnected = 0x08
    case runnerReconnected = 0x09
    case resync = 0x0A
    case acpEvent = 0x0B
    case acpCommand = 0x0C
    case acpSnapshot = 0x0D
    case position = 0x20
    case gap = 0x21
    case lagged = 0x22
    case presence = 0x23
    case error = 0x24

    /// Frames kept in the replay buffer for late or reconnecting browsers.
    public var isReplayable: Bool {
        switch self {
        case .output, .control, .acpEvent: true
        default: false
        }
    }

    public var isExtension: Bool { rawValue >= 0x20 }
}
