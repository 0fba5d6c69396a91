import Reactor
import Framing

/// A browser (subscriber) of a pod: receives the runner's frames, sends
/// input. Owns its slow-consumer state: at the outbound bound it drops its
/// queued replayable frames, skips live ones, and once drained catches up
/// with Snapshot + tail (docs/protocol.md §8).
final class BrowserSession: WebSocketEndpoint {
    let pod: PodChannel
    /// `scope: "read"`: a viewer (the rest of the token is not kept: the
    /// pod key is the pod's, and an idle connection should stay small).
    let readOnly: Bool
    /// Opted in to extension frames (`?ext=1`).
    let ext: Bool
    /// Resume point asked for (`?epoch=E&seq=N`), used once at attach.
    let resume: (epoch: UInt32, seq: UInt64)?
    /// The connection; it owns this session (as its endpoint) and outlives
    /// every use here, which stops at `webSocketClosed`. Held unmanaged so
    /// the fan-out path does no reference counting.
    private var wsRef: Unmanaged<WebSocketConnection>! = nil
    var ws: WebSocketConnection { wsRef.takeUnretainedValue() }

    private(set) var lagged = false
    private var droppedWhileLagged: UInt64 = 0
    private var lagTimes: [UInt64] = []
    var pendingTimer: LoopTimer?

    init(pod: PodChannel, identity: Identity, ext: Bool, resume: (epoch: UInt32, seq: UInt64)?) {
        self.pod = pod
        readOnly = identity.readOnly
        self.ext = ext
        self.resume = resume
    }

    var canWrite: Bool { !readOnly }

    // MARK: Outbound

    /// Hot path: one live runner frame. No allocation, no atomic.
    @inline(__always)
    func deliver(_ frame: SlabSlice, replayable: Bool) -> Bool {
        if lagged {
            if replayable { droppedWhileLagged &+= 1 }
            return false
        }
        // Replayable frames coalesce into runs in the queue: a lag drops a
        // run as a whole, and every frame of it is replayable.
        if wsRef._withUnsafeGuaranteedRef({ $0.send(frame: frame, coalesce: replayable) }) { return true }
        if ws.isOpen { lag(droppedNow: replayable ? 1 : 0) }
        return false
    }

    /// Relay-made or catch-up frames: past the bound on purpose (the bound
    /// then holds the queue limit plus one catch-up, itself bounded by the ring).
    /// `replayable`: a frame of the ring, which may coalesce with its neighbours.
    func deliverForced(_ frame: SlabSlice, replayable: Bool = false) {
        ws.send(frame: frame, force: true, coalesce: replayable)
    }

    /// Relay-made frames that must arrive (0x08/0x09, Position, Gap,
    /// Lagged): rare, past the bound.
    func sendRelayFrame(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = ws.send(opcode: .binary, copying: $0, force: true) }
    }

    func sendExtension(_ bytes: [UInt8]) {
        if ext { sendRelayFrame(bytes) }
    }

    /// An Error reply to something the client sent: within the bound only,
    /// so a client that keeps sending refused input without reading cannot
    /// grow its queue.
    func sendErrorReply(code: UInt16, reason: String) {
        guard ext else { return }
        RelayEnvelope.error(code: code, reason: reason).withUnsafeBytes { _ = ws.send(opcode: .binary, copying: $0) }
    }

    private func lag(droppedNow: UInt64) {
        lagged = true
        pod.hub.counters.add(pod.hub.counters.lags, 1)
        // Discard what is queued and can be rebuilt from the ring; never the
        // frame being written (a frame is never cut).
        var dropped = 0
        _ = ws.connection.dropQueued { entry in
            guard let type = ServerFrameInspector.relayType(entry) else { return false }
            // Replayable frames and snapshots come back with the catch-up;
            // a queued Position would describe frames dropped here.
            let replayable = RelayFrameType(rawValue: type)?.isReplayable == true
            guard replayable || type == RelayFrameType.snapshot.rawValue || type == RelayFrameType.acpSnapshot.rawValue
                || type == RelayFrameType.position.rawValue else { return false }
            // An entry may be a coalesced run of replayable frames.
            if replayable { dropped += ServerFrameInspector.frameCount(entry) }
            return true
        }
        droppedWhileLagged &+= droppedNow &+ UInt64(dropped)
        let now = ws.loop.turnStart
        lagTimes = lagTimes.filter { now &- $0 < pod.hub.settings.lagWindow } + [now]
        if lagTimes.count >= pod.hub.settings.lagLimit {
            ws.close(code: RelayClose.slowConsumer.0, reason: RelayClose.slowConsumer.1)
            return
        }
        ws.notifyWhenDrained()
    }

    // MARK: WebSocketEndpoint

    func webSocketOpened(_ ws: WebSocketConnection) {
        wsRef = Unmanaged.passUnretained(ws)
        pod.hub.connectionOpened(.browser, pod: pod.key, ext: ext, readOnly: readOnly)
        pod.browserJoined(self)
    }

    func webSocket(_ ws: WebSocketConnection, received opcode: WebSocketOpcode,
                   payload: UnsafeRawBufferPointer, frame: ReceivedFrame?) {
        guard opcode == .binary || opcode == .text, payload.count > 0 else { return }
        pod.browserSent(self, type: payload[0], payload: payload, frame: frame)
    }

    func webSocketDrained(_ ws: WebSocketConnection) {
        guard lagged else { return }
        lagged = false
        sendExtension(RelayEnvelope.lagged(droppedFrames: droppedWhileLagged))
        pod.hub.counters.add(pod.hub.counters.droppedFrames, Int(droppedWhileLagged))
        droppedWhileLagged = 0
        pod.catchUp(self)
    }

    func webSocketClosed(_ ws: WebSocketConnection, code: UInt16) {
        pendingTimer?.cancel()
        pod.hub.connectionClosed(.browser, pod: pod.key, code: code)
        pod.browserLeft(self)
    }
}
