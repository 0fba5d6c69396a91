import Reactor
import Framing

/// The runner (publisher) of a pod. Input to it is never dropped: when its
/// queue is full the pod pauses reading from its browsers (TCP backpressure)
/// until this queue drains.
final class RunnerSession: WebSocketEndpoint {
    let pod: PodChannel
    let ext: Bool
    /// See `BrowserSession.ws`.
    private var wsRef: Unmanaged<WebSocketConnection>! = nil
    var ws: WebSocketConnection { wsRef.takeUnretainedValue() }
    var pendingTimer: LoopTimer?
    /// Set when the pod let go of this runner (replaced, or the pod ended).
    var detached = false

    init(pod: PodChannel, ext: Bool) {
        self.pod = pod
        self.ext = ext
    }

    /// Queues a browser frame; at the bound it is queued anyway and the
    /// pod's browsers stop being read until this queue drains.
    func deliver(_ frame: SlabSlice) {
        if !ws.send(frame: frame) {
            ws.send(frame: frame, force: true)
            pod.pauseInput()
        }
    }

    func sendRelayFrame(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = ws.send(opcode: .binary, copying: $0, force: true) }
    }

    func webSocketOpened(_ ws: WebSocketConnection) {
        wsRef = Unmanaged.passUnretained(ws)
        pod.hub.connectionOpened(.runner, pod: pod.key, ext: ext, readOnly: false)
        pod.runnerJoined(self)
    }

    func webSocket(_ ws: WebSocketConnection, received opcode: WebSocketOpcode,
                   payload: UnsafeRawBufferPointer, frame: ReceivedFrame?) {
        guard !detached, opcode == .binary || opcode == .text, payload.count > 0 else { return }
        pod.runnerSent(type: payload[0], payload: payload)
    }

    func webSocketDrained(_ ws: WebSocketConnection) {
        if !detached { pod.resumeInput() }
    }

    func webSocketClosed(_ ws: WebSocketConnection, code: UInt16) {
        pendingTimer?.cancel()
        pod.hub.connectionClosed(.runner, pod: pod.key, code: code)
        if !detached { pod.runnerLeft(self) }
    }
}
