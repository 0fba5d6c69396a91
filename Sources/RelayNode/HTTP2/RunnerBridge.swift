import Reactor
import Framing
import Synchronization

/// A runner whose stream must stay on one loop (it shares an HTTP/2
/// connection with other streams) while its pod lives on another (the
/// pod's home loop, by hash of its key). Two halves:
///
/// - `RunnerBridge`, the stream's endpoint on the stream's loop: copies
///   each read's messages into one batch for the home (runner output, the
///   pod's hot input, so one post per read, not per message);
/// - `RemoteRunnerStream`, a `MessageStream` on the home loop that the
///   pod's `RunnerSession` uses like any runner stream: what it is asked
///   to send is copied and posted to the stream's loop.
///
/// The bound toward the runner: bytes posted and not yet queued on the
/// stream, plus what that stream last said it held, against the stream's
/// own limit; past it `forward` says no and the pod pauses its browsers
/// until the stream reports drained (the same backpressure as a runner
/// over TCP, one hop later).
final class RunnerBridge: MessageStreamEndpoint, @unchecked Sendable {
    let remote: RemoteRunnerStream
    /// The stream this bridge serves (it owns the bridge); nil once closed.
    private unowned(unsafe) var stream: MessageStream?
    private var batch: [[UInt8]] = []

    /// `limit`: the runner's outbound bound (the relay's per-stream bound).
    init(home: PodHub, podKey: String, ext: Bool, limit: Int) {
        remote = RemoteRunnerStream(home: home, podKey: podKey, ext: ext)
        remote.limit = limit
        remote.bridge = self
    }

    private func toHome(_ job: @escaping @Sendable (RemoteRunnerStream) -> Void) {
        let remote = self.remote
        _ = remote.home.loop.execute { job(remote) }
    }

    // MARK: On the stream's loop

    func streamOpened(_ stream: MessageStream) {
        self.stream = stream
        remote.bridgeLoop = stream.loop
        let summary = stream.transportSummary
        let names = stream.transportNames
        toHome { $0.open(summary, names: names) }
    }

    func stream(_ stream: MessageStream, received message: ReceivedMessage) {
        batch.append(Array(message.payload))
    }

    func streamReadDone(_ stream: MessageStream) {
        guard !batch.isEmpty else { return }
        let messages = batch
        batch = []
        toHome { $0.received(messages) }
    }

    func streamDrained(_ stream: MessageStream) {
        remote.queuedOnStream.store(stream.queuedBytes, ordering: .relaxed)
        toHome { $0.drained() }
    }

    func streamClosed(_ stream: MessageStream, code: UInt16) {
        self.stream = nil
        toHome { $0.closed(code: code) }
    }

    /// From the home: messages for the runner (each a relay envelope).
    func deliver(_ messages: [[UInt8]], force: Bool) {
        let bytes = messages.reduce(0) { $0 + $1.count }
        remote.inFlight.add(-bytes, ordering: .relaxed)
        guard let stream else { return }
        for m in messages {
            // Forced: the home already counted them against the bound.
            m.withUnsafeBytes { _ = stream.send(copying: $0, kind: .other, force: true) }
        }
        remote.queuedOnStream.store(stream.queuedBytes, ordering: .relaxed)
    }

    func pause() { stream?.pauseReading() }
    func resume() { stream?.resumeReading() }
    func notifyWhenDrained() { stream?.notifyWhenDrained() }
    func close(code: UInt16, reason: String) { stream?.close(code: code, reason: reason) }
}

/// The home-loop half of a `RunnerBridge` (see there). Loop-confined to
/// the home loop but for the two atomics the stream's loop writes.
final class RemoteRunnerStream: MessageStream, @unchecked Sendable {
    let home: PodHub
    let podKey: String
    let ext: Bool
    /// The other half: only reached by posting to its loop.
    var bridge: RunnerBridge!
    private var session: RunnerSession?
    private var open = false
    private var paused = false
    private var summary = TransportSummary()
    private var names = (http: "h2", stream: "ws-over-h2")
    var limit = 1 << 20
    let inFlight = Atomic<Int>(0)
    let queuedOnStream = Atomic<Int>(0)

    init(home: PodHub, podKey: String, ext: Bool) {
        self.home = home
        self.podKey = podKey
        self.ext = ext
    }

    private func toStream(_ job: @escaping @Sendable (RunnerBridge) -> Void) {
        let bridge = self.bridge!
        _ = bridgeLoop?.execute { job(bridge) }
    }

    /// The stream's loop (where the bridge lives); set there before the
    /// bridge posts anything here.
    var bridgeLoop: EventLoop?

    // MARK: Events from the stream's loop (on the home loop)

    func open(_ summary: TransportSummary, names: (http: String, stream: String)) {
        self.summary = summary
        self.names = names
        open = true
        let s = RunnerSession(pod: home.pod(podKey), ext: ext)
        session = s
        s.streamOpened(self)
    }

    func received(_ messages: [[UInt8]]) {
        guard let session else { return }
        for m in messages {
            m.withUnsafeBytes { session.stream(self, received: ReceivedMessage(payload: $0, isText: false, inPlace: nil)) }
        }
        session.streamReadDone(self)
    }

    func drained() { session?.streamDrained(self) }

    func closed(code: UInt16) {
        open = false
        let s = session
        session = nil
        s?.streamClosed(self, code: code)
    }

    // MARK: MessageStream (called by the pod on the home loop)

    override var loop: EventLoop { home.loop }
    override var isOpen: Bool { open }
    override var queuedBytes: Int { inFlight.load(ordering: .relaxed) + queuedOnStream.load(ordering: .relaxed) }
    override var transportSummary: TransportSummary { summary }
    override var transportNames: (http: String, stream: String) { names }

    private func post(_ message: UnsafeRawBufferPointer, force: Bool) -> Bool {
        guard open else { return false }
        if !force && queuedBytes >= limit { return false }
        inFlight.add(message.count, ordering: .relaxed)
        let copy = [Array(message)]
        toStream { $0.deliver(copy, force: force) }
        return true
    }

    /// The pod's frames to a runner are server WebSocket frames: the
    /// envelope is what crosses (the stream re-frames it for its transport).
    override func send(_ frame: SlabSlice, kind: MessageKind, messages: UInt32, force: Bool, coalesce: Bool) -> Bool {
        var offset = 0
        var ok = true
        while offset < frame.count {
            let (headerSize, length) = GRPCStream.serverFrame(frame.start + offset)
            ok = post(UnsafeRawBufferPointer(start: frame.start + offset + headerSize, count: length), force: force) && ok
            offset += headerSize + length
        }
        return ok
    }

    override func send(copying message: UnsafeRawBufferPointer, kind: MessageKind, force: Bool) -> Bool {
        post(message, force: force)
    }

    override func forward(_ message: ReceivedMessage, force: Bool) -> Bool {
        post(message.payload, force: force)
    }

    override func dropQueued(where drop: (MessageKind, Int) -> Bool) -> Int { 0 }

    override func pauseReading() {
        paused = true
        toStream { $0.pause() }
    }

    override func resumeReading() {
        paused = false
        toStream { $0.resume() }
    }

    override var isReadingPaused: Bool { paused }
    override func notifyWhenDrained() { toStream { $0.notifyWhenDrained() } }

    override func close(code: UInt16, reason: String) {
        toStream { $0.close(code: code, reason: reason) }
    }
}
