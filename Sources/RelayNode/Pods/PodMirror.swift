import Reactor
import Framing
import Synchronization

/// A pod as seen from a loop that is not its home: the browsers of the pod
/// that live on this loop, a replay state fed by the home (with the home's
/// epoch and sequence numbers, so attach, resume and catch-up are local),
/// and the lifecycle the home reports (runner present or away, input
/// paused, pod ended). The home's `LoopLink` sends it batches of frames and
/// notices; it sends the home joins, leaves and input through the home's
/// mailbox. Every method runs on this mirror's loop.
final class PodMirror: BrowserHost, @unchecked Sendable {
    let key: String
    unowned let hub: PodHub
    /// The pod's home hub: reached only by posting to its loop.
    let home: PodHub
    let credit = LinkCredit()

    @exclusivity(unchecked) private var replay: PodReplay
    @exclusivity(unchecked) private var browsers = Subscribers()
    /// Browsers waiting for the home to take them in (the browser limit is the home's).
    private var joining: [UInt32: BrowserSession] = [:]
    private var nextID: UInt32 = 1
    private var runnerPresent = false
    private var runnerPaired = false
    private var inputPaused = false
    /// The home ended the pod, or this mirror has no browser left: later batches only settle the credit.
    private(set) var detached = false

    init(key: String, hub: PodHub, home: PodHub) {
        self.key = key
        self.hub = hub
        self.home = home
        replay = PodReplay(epoch: 0, ringBytes: hub.settings.replayRingBytes)
    }

    private func toHome(_ job: @escaping @Sendable (PodChannel) -> Void, creating: Bool = false) {
        let home = self.home, key = self.key
        home.loop.execute {
            if let pod = creating ? home.pod(key) : home.existingPod(key) { job(pod) }
        }
    }

    // MARK: BrowserHost

    func browserJoined(_ b: BrowserSession) {
        guard !detached else {
            b.stream.close(code: RelayClose.runnerGone.0, reason: RelayClose.runnerGone.1)
            return
        }
        let id = nextID
        nextID &+= 1
        b.linkID = id
        joining[id] = b
        if inputPaused { b.stream.pauseReading() }
        let (ext, canWrite) = (b.ext, b.canWrite)
        toHome({ [self] pod in pod.remoteJoined(self, id: id, ext: ext, canWrite: canWrite) }, creating: true)
    }

    func browserLeft(_ b: BrowserSession) {
        b.pendingTimer?.cancel()
        b.pendingTimer = nil
        if joining.removeValue(forKey: b.linkID) == nil && !browsers.remove(b) { return }
        if !detached {
            let id = b.linkID
            toHome { [self] pod in pod.remoteLeft(self, id: id) }
        }
        if browsers.isEmpty && joining.isEmpty { leave() }
    }

    func browserSent(_ b: BrowserSession, _ message: ReceivedMessage) {
        if b.refuses(message.payload[0]) {
            hub.counters.add(hub.counters.refusedInput, 1)
            b.sendErrorReply(code: 403, reason: "read-only viewer")
            return
        }
        guard !detached else { return }
        let id = b.linkID, bytes = Array(message.payload)
        toHome { [self] pod in pod.remoteSent(self, id: id, bytes) }
    }

    func catchUp(_ b: BrowserSession) {
        if replay.catchUp(b) { askForSnapshot() }
    }

    private func askForSnapshot() {
        toHome { pod in pod.resyncRunner() }
    }

    /// No browser left here: the hub forgets this mirror, and batches still
    /// on their way are only settled.
    private func leave() {
        guard !detached else { return }
        detached = true
        hub.removeMirror(self)
    }

    // MARK: From the home

    func apply(_ batch: LinkBatch) {
        defer {
            batch.release()
            credit.inFlight.subtract(batch.bytes, ordering: .relaxed)
            if !detached && credit.lagged.load(ordering: .relaxed)
                && credit.inFlight.load(ordering: .relaxed) < hub.settings.linkBytes / 2 {
                toHome { [self] pod in pod.remoteCaughtUp(self) }
            }
        }
        guard !detached else { return }
        // Adjacent replayable frames go to each browser as one run, as on
        // the home loop (the batch's slabs live until the end of this call).
        var run: SlabSlice? = nil
        var runFrames: UInt32 = 0
        func fanOut(_ f: SlabSlice, kind: MessageKind, frames: UInt32) {
            let delivered = browsers.deliver(f, kind: kind, frames: frames)
            hub.counters.add(hub.counters.deliveries, delivered &* Int(frames))
            hub.counters.add(hub.counters.bytesOut, delivered &* f.count)
        }
        func fanOutRun() {
            if let r = run { fanOut(r, kind: .replayable, frames: runFrames) }
            run = nil
        }
        defer { fanOutRun() }
        for item in batch.items {
            if case .frame(let f, _, .replayable, _, false) = item, let r = run,
               r.slab.toOpaque() == f.slab.toOpaque(), r.start + r.count == f.start, r.count + f.count <= OutboundQueue.maxRun {
                if case .frame(let f, let type, let kind, let seq, _) = item { replay.record(f, type: type, kind: kind, seq: seq) }
                run!.count += f.count
                runFrames &+= 1
                continue
            }
            fanOutRun()
            switch item {
            case .frame(let f, let type, let kind, let seq, let extendedOnly):
                replay.record(f, type: type, kind: kind, seq: seq)
                if extendedOnly {
                    browsers.broadcast(f, extendedOnly: true)
                } else if kind == .replayable {
                    run = f
                    runFrames = 1
                } else {
                    fanOut(f, kind: kind, frames: 1)
                }
            case .state(let s):
                restore(s)
            case .accepted(let id):
                guard let b = joining.removeValue(forKey: id) else { continue }
                browsers.add(b)
                if replay.attach(b) && runnerPresent { askForSnapshot() }
                if !runnerPresent {
                    if runnerPaired {
                        b.sendRelayFrame([RelayFrameType.runnerDisconnected.rawValue])
                    } else {
                        startPendingTimer(b)
                    }
                }
            case .refused(let id, let code, let reason):
                joining.removeValue(forKey: id)?.stream.close(code: code, reason: reason)
                // The home dropped its link with its last browser: so does this side.
                if browsers.isEmpty && joining.isEmpty { leave() }
            case .runner(let present, let paired):
                runnerPresent = present
                runnerPaired = paired
                if present {
                    for b in browsers.all {
                        b.pendingTimer?.cancel()
                        b.pendingTimer = nil
                    }
                }
            case .pauseInput:
                inputPaused = true
                for b in browsers.all { b.stream.pauseReading() }
                for b in joining.values { b.stream.pauseReading() }
            case .resumeInput:
                inputPaused = false
                for b in browsers.all { b.stream.resumeReading() }
                for b in joining.values { b.stream.resumeReading() }
            case .inputRefused(let id):
                browsers.all.first { $0.linkID == id }?.sendErrorReply(code: 503, reason: "runner away: input buffer full")
            case .lagged:
                break
            case .end(let code, let reason):
                detached = true
                hub.removeMirror(self)
                for b in browsers.removeAll() + Array(joining.values) {
                    b.pendingTimer?.cancel()
                    b.stream.close(code: code, reason: reason)
                }
                joining.removeAll()
                replay.removeAll()
                return
            }
        }
    }

    /// The home's state replaces ours. Browsers already here may have missed
    /// frames (the link fell behind): they catch up as after a lag.
    private func restore(_ s: LinkState) {
        replay.reset(epoch: s.epoch, lastSeq: s.lastSeq, snapshotAfterSeq: s.snapshotAfterSeq)
        if let snap = s.snapshot { replay.restoreSnapshot(snap, type: RelayFrameType.snapshot.rawValue) }
        if let acp = s.acpSnapshot { replay.restoreSnapshot(acp, type: RelayFrameType.acpSnapshot.rawValue) }
        for (seq, f) in s.ring { replay.restoreRingFrame(f, seq: seq) }
        runnerPresent = s.runnerPresent
        runnerPaired = s.runnerPaired
        if s.inputPaused != inputPaused {
            inputPaused = s.inputPaused
            for b in browsers.all + Array(joining.values) {
                if inputPaused { b.stream.pauseReading() } else { b.stream.resumeReading() }
            }
        }
        for b in browsers.all { b.fellBehind() }
    }

    private func startPendingTimer(_ b: BrowserSession) {
        b.pendingTimer = hub.loop.schedule(afterNanoseconds: hub.settings.pendingTimeout) { [unowned self, unowned b] in
            b.pendingTimer = nil
            b.stream.close(code: RelayClose.pendingTimeout.0, reason: RelayClose.pendingTimeout.1)
            browserLeft(b)      // gone for the pod now, not when the peer answers
        }
    }
}
