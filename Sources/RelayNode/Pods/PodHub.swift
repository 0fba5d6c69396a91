import Reactor

import Logging
import Synchronization

/// The pods homed on one loop (`hash(pod_key) % loops`), and that loop's
/// counters. Confined to its loop: other threads only reach it by posting a
/// job to that loop (hence `@unchecked Sendable`).
final class PodHub: @unchecked Sendable {
    unowned let loop: EventLoop
    let settings: PodSettings
    let counters: RelayCounters
    let logger: Logger
    private var pods: [String: PodChannel] = [:]
    /// Mirrors of pods homed on other loops, for browsers on this loop.
    private var mirrors: [String: PodMirror] = [:]

    init(loop: EventLoop, settings: PodSettings, counters: RelayCounters, logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.settings = settings
        self.counters = counters
    }

    /// The pod for `key`, created on first use.
    func pod(_ key: String) -> PodChannel {
        if let p = pods[key], !p.ended { return p }
        let p = PodChannel(key: key, hub: self)
        pods[key] = p
        counters.pods.store(pods.count, ordering: .relaxed)
        return p
    }

    /// The pod for `key` if it exists and has not ended.
    func existingPod(_ key: String) -> PodChannel? {
        if let p = pods[key], !p.ended { return p }
        return nil
    }

    /// Where a browser of `key` on this loop belongs: the pod, when this is
    /// its home, else this loop's mirror of it (created on first use).
    func host(for key: String, home: PodHub) -> any BrowserHost {
        if home === self { return pod(key) }
        if let m = mirrors[key], !m.detached { return m }
        let m = PodMirror(key: key, hub: self, home: home)
        mirrors[key] = m
        counters.mirrors.store(mirrors.count, ordering: .relaxed)
        return m
    }

    var mirrorCount: Int { mirrors.count }

    func removeMirror(_ mirror: PodMirror) {
        if mirrors[mirror.key] === mirror { mirrors[mirror.key] = nil }
        counters.mirrors.store(mirrors.count, ordering: .relaxed)
    }

    func remove(_ pod: PodChannel) {
        if pods[pod.key] === pod { pods[pod.key] = nil }
        counters.pods.store(pods.count, ordering: .relaxed)
    }

    /// One log line and the connection gauge per connection event (never per frame).
    func connectionOpened(_ role: PodRole, pod: String, ext: Bool, readOnly: Bool, transport: TransportSummary,
                          names: (http: String, stream: String) = ("h1", "ws")) {
        if role == .runner { counters.runners.add(1, ordering: .relaxed) } else { counters.browsers.add(1, ordering: .relaxed) }
        var metadata: Logger.Metadata = ["pod": "\(pod)", "ext": "\(ext)", "read_only": "\(readOnly)",
                                         "transport": "\(transport.protocolVersion ?? "tcp")",
                                         "http": "\(names.http)", "stream": "\(names.stream)"]
        if let alpn = transport.applicationProtocol { metadata["alpn"] = "\(alpn)" }
        if let peer = transport.peerSubject { metadata["peer"] = "\(peer)" }
        logger.info("\(role.rawValue) connected", metadata: metadata)
    }

    func connectionClosed(_ role: PodRole, pod: String, code: UInt16) {
        counters.countClose(code)
        if role == .runner { counters.runners.add(-1, ordering: .relaxed) } else { counters.browsers.add(-1, ordering: .relaxed) }
        logger.info("\(role.rawValue) closed", metadata: ["pod": "\(pod)", "code": "\(code)"])
    }

    func apply(old: PodStats, new: PodStats) {
        counters.activeChannels.add(new.activeChannels - old.activeChannels, ordering: .relaxed)
        counters.totalSubscribers.add(new.totalSubscribers - old.totalSubscribers, ordering: .relaxed)
        counters.pendingPublishers.add(new.pendingPublishers - old.pendingPublishers, ordering: .relaxed)
        counters.pendingSubscribers.add(new.pendingSubscribers - old.pendingSubscribers, ordering: .relaxed)
    }

    /// FNV-1a of the pod key: stable across processes, so a key's home loop
    /// does not change between runs.
    static func hash(_ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in key.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100000001b3
        }
        return h
    }
}
