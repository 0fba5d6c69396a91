/// The pod lifecycle knobs (AgentsMesh defaults; docs/protocol.md §6).
struct PodSettings: Sendable {
    var maxBrowsers = 10
    var runnerReconnectTimeout: UInt64 = 30_000_000_000
    var pendingTimeout: UInt64 = 60_000_000_000
    var keepAlive: UInt64 = 30_000_000_000
    var replayRingBytes = 1 << 20
    /// Input held while the runner is away (delivered when it returns).
    var heldInputBytes = 64 << 10
    /// A browser that lags this many times within `lagWindow` is closed (4008).
    var lagLimit = 3
    var lagWindow: UInt64 = 60_000_000_000

    /// How far a pod's link to a mirror on another loop may run ahead (frame
    /// bytes posted and not yet applied): the replay ring's size, at least
    /// 64 KiB (one read). Past it the mirror's browsers catch up from a
    /// fresh state, which is what the ring could give them anyway.
    var linkBytes: Int { max(replayRingBytes, 64 << 10) }
}

/// Close codes and reasons the relay uses.
enum RelayClose {
    static let replaced: (UInt16, String) = (1000, "replaced by new connection")
    static let noSubscribers: (UInt16, String) = (1000, "no subscribers")
    static let runnerGone: (UInt16, String) = (1001, "runner disconnected")
    static let pendingTimeout: (UInt16, String) = (1001, "pending connection timeout")
    static let maxSubscribers: (UInt16, String) = (1008, "max subscribers reached")
    static let slowConsumer: (UInt16, String) = (4008, "slow consumer")
}
