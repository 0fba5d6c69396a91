import Reactor
import Framing

/// The runner (publisher) of a pod. Input to it is never dropped: when its
/// queue is full the pod pauses reading from its browsers (TCP backpressure)
/// until this queue drains.
final class RunnerSession: MessageStreamEndpoint {
    let pod: PodChannel
    let ext: Bool
    /// See `BrowserSession.stream`.
    private var streamRef: Unmanaged<MessageStream>! = nil
    var stream: MessageStream { streamRef.takeUnretainedValue() }
    var pendingTimer: LoopTimer?
    /// Set when the pod let go of this runner (replaced, or the pod ended).
    var detached = false

    init(pod: PodChannel, ext: Bool) {
        self.pod = pod
        self.ext = ext
    }

    /// Queues a browser's message; at the bound it is queued anyway and the
    /// pod's browsers stop being read until this queue drains.
    func deliver(_ message: ReceivedMessage) {
        if !stream.forward(message, force: false) {
            _ = stream.forward(message, force: true)
            pod.pauseInput()
        }
    }

    /// Input held while the runner was away (a copy of the message).
    func deliver(held message: SlabSlice) {
        deliver(ReceivedMessage(payload: message.bytes, isText: false, inPlace: nil))
    }

    func sendRelayFrame(_ bytes: [UInt8]) {
        _ = stream.send(copying: bytes, force: true)
    }

    func streamOpened(_ stream: MessageStream) {
        streamRef = Unmanaged.passUnretained(stream)
        pod.hub.connectionOpened(.runner, pod: pod.key, ext: ext, readOnly: false, transport: stream.transportSummary, names: stream.transportNames)
        pod.runnerJoined(self)
    }

    func stream(_ stream: MessageStream, received message: ReceivedMessage) {
        guard !detached, message.payload.count > 0 else { return }
        pod.runnerSent(type: message.payload[0], payload: message.payload)
    }

    func streamReadDone(_ stream: MessageStream) {
        if !detached { pod.fanOutRun() }
    }

    func streamDrained(_ stream: MessageStream) {
        if !detached { pod.resumeInput() }
    }

    func streamClosed(_ stream: MessageStream, code: UInt16) {
        pendingTimer?.cancel()
        pod.hub.connectionClosed(.runner, pod: pod.key, code: code)
        if !detached { pod.runnerLeft(self) }
    }
}
