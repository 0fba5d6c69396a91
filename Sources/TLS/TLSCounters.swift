import Synchronization
import Reactor

/// What a relay reports about its TLS connections: kept by the transports
/// themselves (any loop thread), read by /stats and /metrics. Per
/// handshake, never per byte.
public final class TLSCounters: Sendable {
    /// TLS connections open now (handshaking or established).
    public let open = Atomic<Int>(0)
    public let handshakes = Atomic<Int>(0)
    /// Handshakes that resumed a session (ticket or cache).
    public let resumed = Atomic<Int>(0)
    private let byVersion = Locked<[String: Int]>([:])
    private let failuresByReason = Locked<[String: Int]>([:])

    public init() {}

    func handshakeCompleted(version: String, resumed wasResumed: Bool) {
        handshakes.add(1, ordering: .relaxed)
        if wasResumed { resumed.add(1, ordering: .relaxed) }
        byVersion.withLock { $0[version, default: 0] += 1 }
    }

    /// `reason`: a label (`timeout`), or OpenSSL's reason text, made one.
    public func handshakeFailed(reason: String) {
        let label = Self.label(reason)
        failuresByReason.withLock { $0[label, default: 0] += 1 }
    }

    public var versions: [String: Int] { byVersion.withLock { $0 } }
    public var failures: [String: Int] { failuresByReason.withLock { $0 } }

    /// "wrong version number" → "wrong_version_number": OpenSSL's reasons
    /// are a fixed set, so the label set stays bounded.
    static func label(_ reason: String) -> String {
        String(reason.lowercased().map { $0 == " " || $0 == "-" ? "_" : $0 })
    }
}
