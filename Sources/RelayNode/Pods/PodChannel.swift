import Glibc
import Reactor
import Framing

/// One pod (keyed by `pod_key`) on its home loop: its runner, its browsers,
/// the replay ring and the latest snapshots, and the AgentsMesh lifecycle
/// (pairing, pending timeout, runner reconnect grace, keep-alive). Every
/// method runs on the home loop. Browsers of the pod on other loops belong
/// to that loop's `PodMirror`, which this pod feeds through one `LoopLink`
/// each; they count like local ones for the limit, presence and /stats.
final class PodChannel: BrowserHost {
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
    /// One per mirror of this pod on another loop.
    @exclusivity(unchecked) private var links: [LoopLink] = []
    /// Browsers accepted through the links.
    private var remoteBrowsers = 0
    /// The replayable frames of the runner's current read not yet fanned
    /// out: adjacent in the arena, they go to each browser as one run when
    /// the read is done (one queue append per browser per read, not per
    /// frame: the per-browser state is touched once). Holds one count.
    private var run: SlabSlice?
    private var runFrames: UInt32 = 0
    private var totalBrowsers: Int { browsers.count + remoteBrowsers }
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
        for link in links { link.send(.runner(present: true, paired: true)) }
        if totalBrowsers == 0 { startRunnerPendingTimer(r) }
        // Browsers that came first were attached without a Snapshot.
        if replay.snapshot == nil && totalBrowsers > 0 { r.sendRelayFrame([RelayFrameType.resync.rawValue]) }
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
        fanOutRun()
        runner = nil
        r.detached = true
        if inputPaused { resumeInput() }
        if totalBrowsers > 0 { broadcastRelayFrame([RelayFrameType.runnerDisconnected.rawValue]) }
        for link in links { link.send(.runner(present: false, paired: true)) }
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
        let (kind, seq) = replay.record(frame, type: type)
        for link in links { link.frame(frame, type: type, kind: kind, seq: seq) }
        if kind == .replayable {
            if let r = run, r.slab.toOpaque() == frame.slab.toOpaque(), r.start + r.count == frame.start,
               r.count + frame.count <= OutboundQueue.maxRun {
                run!.count += frame.count
                runFrames &+= 1
                return
            }
            fanOutRun()
            frame.retain()
            run = frame
            runFrames = 1
        } else {
            fanOutRun()
            fanOut(frame, kind: kind, frames: 1)
        }
    }

    /// The runner's read is done, or something else is about to reach the
    /// browsers: the pending run goes out first.
    func fanOutRun() {
        guard let r = run else { return }
        run = nil
        fanOut(r, kind: .replayable, frames: runFrames)
        r.release()
    }

    @inline(__always)
    private func fanOut(_ frame: SlabSlice, kind: MessageKind, frames: UInt32) {
        let delivered = browsers.deliver(frame, kind: kind, frames: frames)
        counters.add(counters.deliveries, delivered &* Int(frames))
        counters.add(counters.bytesOut, delivered &* frame.count)
    }

    // MARK: Browser side

    func browserJoined(_ b: BrowserSession) {
        fanOutRun()
        guard !ended else {
            b.stream.close(code: RelayClose.runnerGone.0, reason: RelayClose.runnerGone.1)
            return
        }
        if totalBrowsers >= hub.settings.maxBrowsers {
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
                b.pendingTimer = loop.schedule(afterNanoseconds: hub.settings.pendingTimeout) { [unowned self, unowned b] in
                    b.pendingTimer = nil
                    b.stream.close(code: RelayClose.pendingTimeout.0, reason: RelayClose.pendingTimeout.1)
                    // Gone for the pod now, not when the peer answers the Close.
                    browserLeft(b)
                }
            }
        }
        sendPresence()
        updateStats()
    }

    func browserLeft(_ b: BrowserSession) {
        guard browsers.remove(b) else { return }
        browserGone()
    }

    /// After a browser left (here or on another loop): with none left the
    /// pod waits for one (keep-alive) or ends.
    private func browserGone() {
        if totalBrowsers == 0 && !ended {
            if runner != nil {
                keepAliveTimer = loop.schedule(afterNanoseconds: hub.settings.keepAlive) { [unowned self] in
                    keepAliveTimer = nil
                    if totalBrowsers == 0 { end(browserClose: RelayClose.noSubscribers) }
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
        if b.refuses(message.payload[0]) {
            hub.counters.add(hub.counters.refusedInput, 1)
            b.sendErrorReply(code: 403, reason: "read-only viewer")
            return
        }
        if !input(message) { b.sendErrorReply(code: 503, reason: "runner away: input buffer full") }
    }

    /// Browser input to the runner, or held while it is away. False when
    /// refused (held input full).
    private func input(_ message: ReceivedMessage) -> Bool {
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
            return false
        }
        return true
    }

    // MARK: Browsers on other loops (from their mirrors, through this loop's mailbox)

    private func link(for mirror: PodMirror) -> LoopLink? {
        links.first { $0.mirror === mirror }
    }

    /// A mirror's browser asks to join: within the browser limit it is taken in.
    func remoteJoined(_ mirror: PodMirror, id: UInt32, ext: Bool, canWrite: Bool) {
        let link = self.link(for: mirror) ?? addLink(mirror)
        guard !ended, totalBrowsers < hub.settings.maxBrowsers else {
            let (code, reason) = ended ? RelayClose.runnerGone : RelayClose.maxSubscribers
            link.send(.refused(id, code: code, reason: reason))
            if link.browsers.isEmpty { removeLink(link) }
            return
        }
        link.browsers[id] = canWrite
        remoteBrowsers += 1
        keepAliveTimer?.cancel()
        keepAliveTimer = nil
        if let r = runner {
            r.pendingTimer?.cancel()
            r.pendingTimer = nil
        }
        link.send(.accepted(id))
        sendPresence()
        updateStats()
    }

    func remoteLeft(_ mirror: PodMirror, id: UInt32) {
        guard let link = link(for: mirror), link.browsers.removeValue(forKey: id) != nil else { return }
        remoteBrowsers -= 1
        // The mirror goes with its last browser.
        if link.browsers.isEmpty { removeLink(link) }
        browserGone()
    }

    func remoteSent(_ mirror: PodMirror, id: UInt32, _ bytes: [UInt8]) {
        guard let link = link(for: mirror), link.browsers[id] != nil else { return }
        let accepted = bytes.withUnsafeBytes { input(ReceivedMessage(payload: $0, isText: false, inPlace: nil)) }
        if !accepted { link.send(.inputRefused(id)) }
    }

    /// A mirror's browser needs a Snapshot the mirror does not have.
    func resyncRunner() {
        runner?.sendRelayFrame([RelayFrameType.resync.rawValue])
    }

    /// A lagged link's mirror has caught up: it gets the replay state anew.
    func remoteCaughtUp(_ mirror: PodMirror) {
        guard let link = link(for: mirror), mirror.credit.lagged.load(ordering: .relaxed) else { return }
        mirror.credit.lagged.store(false, ordering: .relaxed)
        link.sendState(replay, runnerPresent: runner != nil, runnerPaired: runnerPaired, inputPaused: inputPaused)
    }

    private func addLink(_ mirror: PodMirror) -> LoopLink {
        let link = LoopLink(pod: self, mirror: mirror, target: mirror.hub.loop, bound: hub.settings.linkBytes)
        links.append(link)
        link.sendState(replay, runnerPresent: runner != nil, runnerPaired: runnerPaired, inputPaused: inputPaused)
        return link
    }

    private func removeLink(_ link: LoopLink) {
        remoteBrowsers -= link.browsers.count
        links.removeAll { $0 === link }
    }

    // MARK: Backpressure

    func pauseInput() {
        guard !inputPaused else { return }
        inputPaused = true
        for b in browsers.all { b.stream.pauseReading() }
        for link in links { link.send(.pauseInput) }
        runner?.stream.notifyWhenDrained()
    }

    func resumeInput() {
        guard inputPaused else { return }
        inputPaused = false
        for b in browsers.all { b.stream.resumeReading() }
        for link in links { link.send(.resumeInput) }
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
        fanOutRun()
        let slab = bytes.withUnsafeBytes { ServerFrame.copy(opcode: .binary, payload: $0) }
        browsers.broadcast(slab.written, extendedOnly: extendedOnly)
        for link in links { link.frame(slab.written, type: bytes[0], kind: .other, seq: 0, extendedOnly: extendedOnly) }
        if toRunner, let r = runner { _ = r.stream.send(slab.written, kind: .other, force: true, coalesce: false) }
        slab.release()
    }

    private func sendPresence() {
        let writers = browsers.writers + links.reduce(0) { $0 + $1.writers }
        broadcastRelayFrame(RelayEnvelope.presence(browsers: totalBrowsers, writers: writers),
                            extendedOnly: true, toRunner: runner?.ext == true)
    }

    private func startRunnerPendingTimer(_ r: RunnerSession) {
        r.pendingTimer?.cancel()
        r.pendingTimer = loop.schedule(afterNanoseconds: hub.settings.pendingTimeout) { [unowned self, unowned r] in
            r.pendingTimer = nil
            r.stream.close(code: RelayClose.pendingTimeout.0, reason: RelayClose.pendingTimeout.1)
            // A runner that waited in vain is gone for the pod now (not when
            // the peer answers the Close), and so is the pod: a browser that
            // comes later waits as pending, not for a runner "away".
            guard runner === r, totalBrowsers == 0 else { return }
            runner = nil
            r.detached = true
            end(browserClose: RelayClose.noSubscribers)
        }
    }

    // MARK: End

    /// Closes everything and leaves the hub.
    private func end(browserClose: (UInt16, String)) {
        guard !ended else { return }
        fanOutRun()
        ended = true
        reconnectTimer?.cancel()
        keepAliveTimer?.cancel()
        for link in links { link.send(.end(code: browserClose.0, reason: browserClose.1)) }
        links.removeAll()
        remoteBrowsers = 0
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
            if runnerPaired && totalBrowsers > 0 {
                s.activeChannels = 1
                s.totalSubscribers = totalBrowsers
            }
            if runner != nil && totalBrowsers == 0 { s.pendingPublishers = 1 }
            if !runnerPaired { s.pendingSubscribers = totalBrowsers }
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
