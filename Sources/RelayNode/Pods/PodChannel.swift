import Glibc
import Reactor
import Framing

/// One pod (keyed by `pod_key`) on its home loop: its runner, its browsers,
/// the replay ring and the latest snapshots, and the AgentsMesh lifecycle
/// (pairing, pending timeout, runner reconnect grace, keep-alive). Every
/// method runs on the home loop; the pod's connections all live there.
final class PodChannel {
    let key: String
    unowned let hub: PodHub
    /// The hub's counters, held directly: no unowned check per frame.
    let counters: RelayCounters
    /// Chosen at creation; a resume from another epoch gets a Gap.
    let epoch: UInt32

    // Loop-confined and never re-entered while mutated: no runtime exclusivity checks per frame.
    @exclusivity(unchecked) private var arena = FrameArena()
    @exclusivity(unchecked) private var ring: ReplayRing
    /// Latest Snapshot / AcpSnapshot frames (counted), and the last sequence
    /// number delivered before that Snapshot arrived.
    private var snapshot: SlabSlice?
    private var snapshotAfterSeq: UInt64 = 0
    private var acpSnapshot: SlabSlice?
    private(set) var lastSeq: UInt64 = 0

    private(set) var runner: RunnerSession?
    /// A runner has been here: its absence is "away" (0x08), not "pending".
    private var runnerPaired = false
    private var browsers: [BrowserSession] = []
    /// The same browsers for the fan-out loop: `browsers` owns them.
    private var fanout: [Unmanaged<BrowserSession>] = []
    private var inputPaused = false

    /// Input received while the runner is away (counted slices, bounded).
    private var heldInput: [SlabSlice] = []
    private var heldBytes = 0

    private var reconnectTimer: LoopTimer?
    private var keepAliveTimer: LoopTimer?
    private(set) var ended = false
    /// This pod's share of the hub's /stats figures.
    private var statsShare = PodStats()

    init(key: String, hub: PodHub) {
        self.key = key
        self.hub = hub
        counters = hub.counters
        epoch = UInt32.random(in: 1...UInt32.max)
        ring = ReplayRing(limit: hub.settings.replayRingBytes)
    }

    var loop: EventLoop { hub.loop }

    // MARK: Runner side

    func runnerJoined(_ r: RunnerSession) {
        if let old = runner {
            old.detached = true
            old.stream.close(code: RelayClose.replaced.0, reason: RelayClose.replaced.1)
        }
        let wasAway = runnerPaired && runner == nil
        runner = r
        runnerPaired = true
        reconnectTimer?.cancel()
        reconnectTimer = nil
        if wasAway { broadcastRelayFrame([RelayFrameType.runnerReconnected.rawValue]) }
        for b in browsers {
            b.pendingTimer?.cancel()
            b.pendingTimer = nil
        }
        if browsers.isEmpty { startRunnerPendingTimer(r) }
        // Browsers that came first were attached without a Snapshot.
        if snapshot == nil && !browsers.isEmpty { r.sendRelayFrame([RelayFrameType.resync.rawValue]) }
        // Input typed while the runner was away, in order.
        let held = heldInput
        heldInput.removeAll()
        heldBytes = 0
        for f in held {
            r.deliver(held: f)
            f.release()
        }
        if inputPaused { resumeInput() }
        sendPresence()
        updateStats()
    }

    func runnerLeft(_ r: RunnerSession) {
        guard runner === r, !ended else { return }
        runner = nil
        r.detached = true
        if inputPaused { resumeInput() }
        if !browsers.isEmpty { broadcastRelayFrame([RelayFrameType.runnerDisconnected.rawValue]) }
        reconnectTimer = loop.schedule(afterNanoseconds: hub.settings.runnerReconnectTimeout) { [unowned self] in
            reconnectTimer = nil
            end(browserClose: RelayClose.runnerGone)
        }
        updateStats()
    }

    /// A runner frame: stored (sequence number, ring, snapshot) and fanned out.
    func runnerSent(type: UInt8, payload: UnsafeRawBufferPointer) {
        let frame = arena.frame(payload: payload)
        defer { frame.release() }
        counters.add(counters.framesIn, 1)
        counters.add(counters.bytesIn, payload.count)
        let kind: MessageKind
        switch RelayFrameType(rawValue: type) {
        case .snapshot?:
            snapshot?.release()
            frame.retain()
            snapshot = frame
            snapshotAfterSeq = lastSeq
            kind = .snapshot
        case .acpSnapshot?:
            acpSnapshot?.release()
            frame.retain()
            acpSnapshot = frame
            kind = .snapshot
        case let t? where t.isReplayable:
            lastSeq &+= 1
            ring.push(seq: lastSeq, frame: frame)
            kind = .replayable
        default:
            kind = .other    // forwarded, not kept (docs/protocol.md §5: unknown types go on)
        }
        var delivered = 0
        for b in fanout {
            if b._withUnsafeGuaranteedRef({ $0.deliver(frame, kind: kind) }) { delivered &+= 1 }
        }
        counters.add(counters.deliveries, delivered)
        counters.add(counters.bytesOut, delivered &* frame.count)
    }

    // MARK: Browser side

    func browserJoined(_ b: BrowserSession) {
        guard !ended else {
            b.stream.close(code: RelayClose.runnerGone.0, reason: RelayClose.runnerGone.1)
            return
        }
        if browsers.count >= hub.settings.maxBrowsers {
            b.stream.close(code: RelayClose.maxSubscribers.0, reason: RelayClose.maxSubscribers.1)
            return
        }
        browsers.append(b)
        fanout.append(Unmanaged.passUnretained(b))
        keepAliveTimer?.cancel()
        keepAliveTimer = nil
        if let r = runner {
            r.pendingTimer?.cancel()
            r.pendingTimer = nil
        }
        if inputPaused { b.stream.pauseReading() }
        attach(b)
        if runner == nil {
            if runnerPaired {
                b.sendRelayFrame([RelayFrameType.runnerDisconnected.rawValue])
            } else {
                b.pendingTimer = loop.schedule(afterNanoseconds: hub.settings.pendingTimeout) { [unowned b] in
                    b.pendingTimer = nil
                    b.stream.close(code: RelayClose.pendingTimeout.0, reason: RelayClose.pendingTimeout.1)
                }
            }
        }
        sendPresence()
        updateStats()
    }

    func browserLeft(_ b: BrowserSession) {
        guard let i = browsers.firstIndex(where: { $0 === b }) else { return }
        browsers.remove(at: i)
        fanout.remove(at: i)
        if browsers.isEmpty && !ended {
            if runner != nil {
                keepAliveTimer = loop.schedule(afterNanoseconds: hub.settings.keepAlive) { [unowned self] in
                    keepAliveTimer = nil
                    if browsers.isEmpty { end(browserClose: RelayClose.noSubscribers) }
                }
            } else if !runnerPaired || reconnectTimer == nil {
                end(browserClose: RelayClose.noSubscribers)
                return
            }
        }
        sendPresence()
        updateStats()
    }

    /// A browser message: refused for viewers, queued to the runner, or
    /// held while the runner is away.
    func browserSent(_ b: BrowserSession, _ message: ReceivedMessage) {
        let type = message.payload[0]
        if !b.canWrite, let t = RelayFrameType(rawValue: type),
           t == .input || t == .resize || t == .resync || t == .acpCommand {
            hub.counters.add(hub.counters.refusedInput, 1)
            b.sendErrorReply(code: 403, reason: "read-only viewer")
            return
        }
        hub.counters.add(hub.counters.framesIn, 1)
        hub.counters.add(hub.counters.bytesIn, message.payload.count)
        if let r = runner {
            r.deliver(message)
        } else if heldBytes + message.payload.count <= hub.settings.heldInputBytes {
            let copy = Slab.copying(message.payload)
            heldInput.append(copy.written)         // keeps the count from copy
            heldBytes += message.payload.count
        } else {
            hub.counters.add(hub.counters.refusedInput, 1)
            b.sendErrorReply(code: 503, reason: "runner away: input buffer full")
        }
    }

    // MARK: Backpressure

    func pauseInput() {
        guard !inputPaused else { return }
        inputPaused = true
        for b in browsers { b.stream.pauseReading() }
        runner?.stream.notifyWhenDrained()
    }

    func resumeInput() {
        guard inputPaused else { return }
        inputPaused = false
        for b in browsers { b.stream.resumeReading() }
    }

    // MARK: Replay

    /// What a joining browser gets before live frames: exactly the frames
    /// after its resume point, or Snapshot(s) + tail (docs/protocol.md §7).
    private func attach(_ b: BrowserSession) {
        if let r = b.resume, b.ext {
            let first = ring.firstSeq ?? (lastSeq &+ 1)
            if r.epoch == epoch && r.seq <= lastSeq && r.seq &+ 1 >= first {
                ring.forEach(after: r.seq) { b.deliverForced($0.frame, kind: .replayable) }
                b.sendExtension(RelayEnvelope.position(epoch: epoch, seq: lastSeq), kind: .position)
                return
            }
            // From the client's next frame; a seq from the future (or another
            // epoch) counts as nothing held.
            let from = r.epoch == epoch && r.seq <= lastSeq ? r.seq &+ 1 : 1
            b.sendExtension(RelayEnvelope.gap(epoch: epoch, from: from, to: max(from, first) &- 1))
        }
        catchUp(b)
    }

    /// Latest Snapshot + AcpSnapshot + every later frame in the ring (then
    /// Position for extended clients). Without a Snapshot the whole ring, and
    /// the runner is asked for one (0x0A).
    func catchUp(_ b: BrowserSession) {
        if let s = snapshot { b.deliverForced(s, kind: .snapshot) }
        if let a = acpSnapshot { b.deliverForced(a, kind: .snapshot) }
        ring.forEach(after: snapshot == nil ? 0 : snapshotAfterSeq) { b.deliverForced($0.frame, kind: .replayable) }
        // No Snapshot, or one whose following frames the ring no longer
        // holds: what was sent is the best available, and the runner is asked
        // for a fresh Snapshot to replace it.
        let stale = snapshot != nil && (ring.firstSeq ?? lastSeq &+ 1) > snapshotAfterSeq &+ 1
        if snapshot == nil || stale, let r = runner { r.sendRelayFrame([RelayFrameType.resync.rawValue]) }
        b.sendExtension(RelayEnvelope.position(epoch: epoch, seq: lastSeq), kind: .position)
    }

    // MARK: Relay-made frames

    /// A relay-made frame encoded once and queued by reference to every
    /// browser (or only the extended ones), like a runner frame.
    private func broadcastRelayFrame(_ bytes: [UInt8], extendedOnly: Bool = false, toRunner: Bool = false) {
        let slab = bytes.withUnsafeBytes { ServerFrame.copy(opcode: .binary, payload: $0) }
        for b in browsers where b.ext || !extendedOnly { b.deliverForced(slab.written, kind: .other) }
        if toRunner, let r = runner { _ = r.stream.send(slab.written, kind: .other, force: true, coalesce: false) }
        slab.release()
    }

    private func sendPresence() {
        let writers = browsers.reduce(0) { $0 + ($1.canWrite ? 1 : 0) }
        broadcastRelayFrame(RelayEnvelope.presence(browsers: browsers.count, writers: writers),
                            extendedOnly: true, toRunner: runner?.ext == true)
    }

    private func startRunnerPendingTimer(_ r: RunnerSession) {
        r.pendingTimer?.cancel()
        r.pendingTimer = loop.schedule(afterNanoseconds: hub.settings.pendingTimeout) { [unowned r] in
            r.pendingTimer = nil
            r.stream.close(code: RelayClose.pendingTimeout.0, reason: RelayClose.pendingTimeout.1)
        }
    }

    // MARK: End

    /// Closes everything and leaves the hub.
    private func end(browserClose: (UInt16, String)) {
        guard !ended else { return }
        ended = true
        reconnectTimer?.cancel()
        keepAliveTimer?.cancel()
        let bs = browsers
        browsers.removeAll()
        fanout.removeAll()
        for b in bs {
            b.pendingTimer?.cancel()
            b.stream.close(code: browserClose.0, reason: browserClose.1)
        }
        if let r = runner {
            runner = nil
            r.detached = true
            r.stream.close(code: RelayClose.noSubscribers.0, reason: RelayClose.noSubscribers.1)
        }
        for f in heldInput { f.release() }
        heldInput.removeAll()
        snapshot?.release()
        snapshot = nil
        acpSnapshot?.release()
        acpSnapshot = nil
        ring.removeAll()
        updateStats()
        hub.remove(self)
    }

    private func updateStats() {
        var s = PodStats()
        if !ended {
            if runnerPaired && !browsers.isEmpty {
                s.activeChannels = 1
                s.totalSubscribers = browsers.count
            }
            if runner != nil && browsers.isEmpty { s.pendingPublishers = 1 }
            if !runnerPaired { s.pendingSubscribers = browsers.count }
        }
        hub.apply(old: statsShare, new: s)
        statsShare = s
    }
}

/// One pod's contribution to /stats.
struct PodStats {
    var activeChannels = 0
    var totalSubscribers = 0
    var pendingPublishers = 0
    var pendingSubscribers = 0
}
