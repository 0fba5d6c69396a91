import Reactor
import Framing

/// A browser (subscriber) of a pod: receives the runner's frames, sends
/// input. Owns its slow-consumer state: at the outbound bound it drops its
/// queued replayable frames, skips live ones, and once drained catches up
/// with Snapshot + tail (docs/protocol.md §8).
final class BrowserSession: MessageStreamEndpoint {
    /// The pod on this browser's loop: the pod itself, or its mirror here.
    let pod: any BrowserHost
    /// `scope: "read"`: a viewer (the rest of the token is not kept: the
    /// pod key is the pod's, and an idle connection should stay small).
    let readOnly: Bool
    /// Opted in to extension frames (`?ext=1`).
    let ext: Bool
    /// Resume point asked for (`?epoch=E&seq=N`), used once at attach.
    let resume: (epoch: UInt32, seq: UInt64)?
    /// The stream; it owns this session (as its endpoint) and outlives
    /// every use here, which stops at `streamClosed`. Held unmanaged, so
    /// the fan-out path does no reference counting.
    private var streamRef: Unmanaged<MessageStream>! = nil
    var stream: MessageStream { streamRef.takeUnretainedValue() }

    private(set) var lagged = false
    private var droppedWhileLagged: UInt64 = 0
    private var lagTimes: [UInt64] = []
    var pendingTimer: LoopTimer?
    /// This browser's number in its mirror (0 on the pod's home loop).
    var linkID: UInt32 = 0

    init(pod: any BrowserHost, identity: Identity, ext: Bool, resume: (epoch: UInt32, seq: UInt64)?) {
        self.pod = pod
        readOnly = identity.readOnly
        self.ext = ext
        self.resume = resume
    }

    var canWrite: Bool { !readOnly }

    // MARK: Outbound

    /// Hot path: one live runner frame. No allocation, no atomic.
    /// `frames`: how many frames `frame` holds (a run of one read's frames).
    @inline(__always)
    func deliver(_ frame: SlabSlice, kind: MessageKind, frames: UInt32 = 1) -> Bool {
        let replayable = kind == .replayable
        if lagged {
            if replayable { droppedWhileLagged &+= UInt64(frames) }
            return false
        }
        // Replayable frames coalesce into runs in the queue: a lag drops a
        // run as a whole, and every frame of it is replayable.
        if streamRef._withUnsafeGuaranteedRef({ $0.send(frame, kind: kind, messages: frames, force: false, coalesce: replayable) }) {
            return true
        }
        if stream.isOpen { lag(droppedNow: replayable ? UInt64(frames) : 0) }
        return false
    }

    /// Catch-up and relay-made frames: past the bound on purpose (the bound
    /// then holds the queue limit plus one catch-up, itself bounded by the ring).
    /// A ring frame (`.replayable`) may coalesce with its neighbours.
    func deliverForced(_ frame: SlabSlice, kind: MessageKind) {
        _ = stream.send(frame, kind: kind, force: true, coalesce: kind == .replayable)
    }

    /// Relay-made frames that must arrive (0x08/0x09, Position, Gap,
    /// Lagged): rare, past the bound.
    func sendRelayFrame(_ bytes: [UInt8], kind: MessageKind = .other) {
        _ = stream.send(copying: bytes, kind: kind, force: true)
    }

    func sendExtension(_ bytes: [UInt8], kind: MessageKind = .other) {
        if ext { sendRelayFrame(bytes, kind: kind) }
    }

    /// An Error reply to something the client sent: within the bound only,
    /// so a client that keeps sending refused input without reading cannot
    /// grow its queue.
    func sendErrorReply(code: UInt16, reason: String) {
        guard ext else { return }
        _ = stream.send(copying: RelayEnvelope.error(code: code, reason: reason), force: false)
    }

    /// The frames this browser got may have a hole that is not its fault
    /// (its mirror's link fell behind): it catches up like after a lag, but
    /// this does not count toward the lag limit.
    func fellBehind() {
        guard !lagged, stream.isOpen else { return }
        lag(droppedNow: 0, counted: false)
    }

    private func lag(droppedNow: UInt64, counted: Bool = true) {
        lagged = true
        if counted { pod.hub.counters.add(pod.hub.counters.lags, 1) }
        // Discard what is queued and can be rebuilt from the ring; never the
        // frame being written (a frame is never cut). Snapshots come back
        // with the catch-up; a queued Position would describe frames
        // dropped here.
        var dropped = 0
        _ = stream.dropQueued { kind, count in
            switch kind {
            case .replayable:
                dropped += count
                return true
            case .snapshot, .position:
                return true
            case .other:
                return false
            }
        }
        droppedWhileLagged &+= droppedNow &+ UInt64(dropped)
        guard counted else {
            stream.notifyWhenDrained()
            return
        }
        let now = stream.loop.turnStart
        lagTimes = lagTimes.filter { now &- $0 < pod.hub.settings.lagWindow } + [now]
        if lagTimes.count >= pod.hub.settings.lagLimit {
            stream.close(code: RelayClose.slowConsumer.0, reason: RelayClose.slowConsumer.1)
            return
        }
        stream.notifyWhenDrained()
    }

    // MARK: MessageStreamEndpoint

    func streamOpened(_ stream: MessageStream) {
        streamRef = Unmanaged.passUnretained(stream)
        pod.hub.connectionOpened(.browser, pod: pod.key, ext: ext, readOnly: readOnly, transport: stream.transportSummary, names: stream.transportNames)
        pod.browserJoined(self)
    }

    func stream(_ stream: MessageStream, received message: ReceivedMessage) {
        guard message.payload.count > 0 else { return }
        pod.browserSent(self, message)
    }

    func streamDrained(_ stream: MessageStream) {
        guard lagged else { return }
        lagged = false
        sendExtension(RelayEnvelope.lagged(droppedFrames: droppedWhileLagged))
        pod.hub.counters.add(pod.hub.counters.droppedFrames, Int(droppedWhileLagged))
        droppedWhileLagged = 0
        pod.catchUp(self)
    }

    func streamClosed(_ stream: MessageStream, code: UInt16) {
        pendingTimer?.cancel()
        pod.hub.connectionClosed(.browser, pod: pod.key, code: code)
        pod.browserLeft(self)
    }
}
