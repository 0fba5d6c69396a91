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

    // Loop-confined and never re-entered while mutated: no runtime exclusivity checks per frame.
    @exclusivity(unchecked) private var arena = FrameArena()
    @exclusivity(unchecked) private var replay: PodReplay

    private(set) var runner: RunnerSession?
    /// A runner has been here: its absence is "away" (0x08), not "pending".
    private var runnerPaired = false
    @exclusivity(unchecked) private var browsers = Subscribers()
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
        replay = PodReplay(epoch: UInt32.random(in: 1...UInt32.max), ringBytes: hub.settings.replayRingBytes)
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
        for b in browsers.all {
            b.pendingTimer?.cancel()
            b.pendingTimer = nil
        }
        if browsers.isEmpty { startRunnerPendingTimer(r) }
        // Browsers that came first were attached without a Snapshot.
        if replay.snapshot == nil && !browsers.isEmpty { r.sendRelayFrame([RelayFrameType.resync.rawValue]) }
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
        let (kind, _) = replay.record(frame, type: type)
        let delivered = browsers.deliver(frame, kind: kind)
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
        browsers.add(b)
        keepAliveTimer?.cancel()
        keepAliveTimer = nil
        if let r = runner {
            r.pendingTimer?.cancel()
            r.pendingTimer = nil
        }
        if inputPaused { b.stream.pauseReading() }
        if replay.attach(b), let r = runner { r.sendRelayFrame([RelayFrameType.resync.rawValue]) }
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
        guard browsers.remove(b) else { return }
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
        for b in browsers.all { b.stream.pauseReading() }
        runner?.stream.notifyWhenDrained()
    }

    func resumeInput() {
        guard inputPaused else { return }
        inputPaused = false
        for b in browsers.all { b.stream.resumeReading() }
    }

    // MARK: Replay

    /// Snapshot + tail for a browser that lagged (asks the runner for a
    /// fresh Snapshot when the one held is missing or stale).
    func catchUp(_ b: BrowserSession) {
        if replay.catchUp(b), let r = runner { r.sendRelayFrame([RelayFrameType.resync.rawValue]) }
    }

    // MARK: Relay-made frames

    /// A relay-made frame encoded once and queued by reference to every
    /// browser (or only the extended ones), like a runner frame.
    private func broadcastRelayFrame(_ bytes: [UInt8], extendedOnly: Bool = false, toRunner: Bool = false) {
        let slab = bytes.withUnsafeBytes { ServerFrame.copy(opcode: .binary, payload: $0) }
        browsers.broadcast(slab.written, extendedOnly: extendedOnly)
        if toRunner, let r = runner { _ = r.stream.send(slab.written, kind: .other, force: true, coalesce: false) }
        slab.release()
    }

    private func sendPresence() {
        broadcastRelayFrame(RelayEnvelope.presence(browsers: browsers.count, writers: browsers.writers),
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
        for b in browsers.removeAll() {
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
        replay.removeAll()
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
