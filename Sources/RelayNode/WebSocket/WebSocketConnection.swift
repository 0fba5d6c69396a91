import Reactor
import Framing

/// Limits and timings of one server-side WebSocket.
struct WebSocketSettings: Sendable {
    var maxMessageSize = 4 << 20
}

/// An upgraded connection speaking RFC 6455 as the server: decodes client
/// frames, answers pings, runs the close handshake and liveness pings, and
/// hands complete messages to its endpoint. As a `MessageStream` it queues
/// the pod's frames by reference in its TCP connection's outbound queue,
/// each tagged with its `MessageKind`.
final class WebSocketConnection: MessageStream, ConnectionHandler {
    /// The connection owns this handler, so it outlives every call here;
    /// held unmanaged: no reference counting on the send path.
    private let connectionRef: Unmanaged<TCPConnection>
    var connection: TCPConnection { connectionRef.takeUnretainedValue() }
    var endpoint: (any MessageStreamEndpoint)?
    /// Held across endpoint callbacks, which never touch the decoder.
    @exclusivity(unchecked) private var decoder: WebSocketDecoder

    // Small fields together (every idle connection carries them); the close
    // timeout is the loop's, in the liveness monitor, not a copy per connection.
    /// `closeSent`: closing — our Close is out, or the peer half-closed
    /// (TCP FIN): either way nothing more is sent to it but what is queued.
    private enum State: UInt8 { case open, closeSent, closed }
    private var state = State.open
    private var closeCode: UInt16 = WebSocketCloseCode.abnormal
    /// Position in the loop's liveness monitor (-1: not in it).
    var livenessIndex: Int32 = -1
    private var lastHeard: UInt64
    private var closeTimer: LoopTimer?
    private unowned(unsafe) let liveness: LivenessMonitor

    /// `liveness` is the monitor of `connection`'s loop.
    init(connection: TCPConnection, settings: WebSocketSettings, liveness: LivenessMonitor) {
        connectionRef = Unmanaged.passUnretained(connection)
        self.liveness = liveness
        decoder = WebSocketDecoder(configuration: .init(expectMasked: true, maxMessageSize: settings.maxMessageSize))
        lastHeard = connection.loop.now()
        super.init()
        liveness.add(self)
    }

    override var loop: EventLoop { connection.loop }
    override var isOpen: Bool { state == .open }

    // MARK: Sending (MessageStream)

    /// Queues a ready server frame (retained). False when the outbound bound
    /// refused it or the connection is closing: the endpoint decides.
    @discardableResult
    override func send(_ frame: SlabSlice, kind: MessageKind, force: Bool, coalesce: Bool) -> Bool {
        guard state == .open else { return false }
        return connectionRef._withUnsafeGuaranteedRef { $0.enqueue(frame, tag: kind.rawValue, force: force, coalesce: coalesce) }
    }

    /// Copies `message` into a new binary frame and queues it.
    @discardableResult
    override func send(copying message: UnsafeRawBufferPointer, kind: MessageKind, force: Bool) -> Bool {
        send(opcode: .binary, copying: message, kind: kind, force: force)
    }

    @discardableResult
    func send(opcode: WebSocketOpcode, copying payload: UnsafeRawBufferPointer, kind: MessageKind = .other, force: Bool = false) -> Bool {
        guard state == .open else { return false }
        let slab = ServerFrame.copy(opcode: opcode, payload: payload)
        defer { slab.release() }
        return connection.enqueue(slab.written, tag: kind.rawValue, force: force)
    }

    /// A client's message as a server frame: re-encoded in place inside the
    /// read slab when it was one whole frame there and will most likely
    /// leave this turn (a queued in-place frame pins the loop's shared read
    /// slab), else copied.
    override func forward(_ message: ReceivedMessage, force: Bool) -> Bool {
        guard state == .open else { return false }
        let opcode: WebSocketOpcode = message.isText ? .text : .binary
        if let frame = message.inPlace, connection.queuedBytes == 0 {
            return connection.enqueue(ServerFrame.inPlace(frame, opcode: opcode), force: force)
        }
        return send(opcode: opcode, copying: message.payload, force: force)
    }

    override func dropQueued(where drop: (MessageKind, Int) -> Bool) -> Int {
        connection.dropQueued { tag, count in drop(MessageKind(rawValue: tag) ?? .other, count) }
    }

    override func pauseReading() { connection.pauseReading() }
    override func resumeReading() { connection.resumeReading() }
    override var isReadingPaused: Bool { connection.isReadingPaused }
    override func notifyWhenDrained() { connection.notifyWhenDrained() }
    override var queuedBytes: Int { connection.queuedBytes }

    /// Starts the close handshake: our Close now, the TCP close when the
    /// peer answers (or after `closeTimeout`).
    override func close(code: UInt16, reason: String = "") {
        guard state == .open else { return }
        state = .closeSent
        closeCode = code
        sendControl(.close, WebSocketEncoder.closePayload(code: code, reason: reason))
        closeTimer = loop.schedule(afterNanoseconds: liveness.closeTimeout) { [unowned self] in
            connection.close()
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): our Close, then TCP close once it is written.
    private func fail(code: UInt16, reason: String) {
        guard state != .closed else { return }
        if state == .open { sendControl(.close, WebSocketEncoder.closePayload(code: code, reason: reason)) }
        state = .closeSent
        closeCode = code
        connection.close(afterFlush: true)
    }

    /// Close and Ping are queued past the bound (they are rare and must not
    /// be lost); a Pong is not: a peer that pings without reading gets no
    /// more answers (RFC 6455 §5.5.3 allows answering only the latest Ping),
    /// so it cannot grow our queue.
    private func sendControl(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        let slab = payload.withUnsafeBytes { ServerFrame.copy(opcode: opcode, payload: $0) }
        connection.enqueue(slab.written, force: opcode != .pong)
        slab.release()
    }

    // MARK: Liveness

    /// Called by the loop's liveness monitor once per interval.
    func checkLiveness(now: UInt64, interval: UInt64) {
        guard state != .closed else { return }
        // While we hold its reading back (backpressure), its Pongs wait
        // unread in the kernel: that is not silence.
        if connection.isReadingPaused { lastHeard = now }
        if now &- lastHeard >= 2 * interval {
            // Half-open: nothing heard for two intervals.
            closeCode = WebSocketCloseCode.abnormal
            connection.close()
            return
        }
        if state == .open { sendControl(.ping, []) }
    }

    // MARK: ConnectionHandler

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        lastHeard = loop.turnStart
        guard state != .closed else { return }
        feed(bytes)
    }

    /// Decodes `bytes` (which may be a slice of a read slab or of a copy).
    func feed(_ bytes: SlabSlice) {
        let base = UnsafeMutableRawPointer(mutating: bytes.start)
        let input = UnsafeMutableRawBufferPointer(start: base, count: bytes.count)
        let error = decoder.feed(input) { event in
            switch event {
            case .message(let opcode, let payload, let location):
                guard state == .open, let endpoint else { return }
                var frame: ReceivedFrame? = nil
                if case .input(let frameStart, let payloadOffset) = location {
                    frame = ReceivedFrame(slab: bytes.slab, payloadStart: UnsafeRawPointer(base + payloadOffset),
                                          payloadCount: payload.count, headerRoom: payloadOffset - frameStart)
                }
                endpoint.stream(self, received: ReceivedMessage(payload: payload, isText: opcode == .text, inPlace: frame))
            case .ping(let payload):
                if state == .open { sendControl(.pong, Array(payload)) }
            case .pong:
                break
            case .close(let code, _):
                receivedClose(code: code)
            }
        }
        if let error { fail(code: error.closeCode, reason: error.reason) }
    }

    private func receivedClose(code: UInt16?) {
        switch state {
        case .open:
            // Echo the peer's code (RFC 6455 §5.5.1), then close the TCP connection.
            closeCode = code ?? WebSocketCloseCode.noStatus
            sendControl(.close, code.map { WebSocketEncoder.closePayload(code: $0, reason: "") } ?? [])
            state = .closeSent
            connection.close(afterFlush: true)
        case .closeSent:
            connection.close(afterFlush: true)
        case .closed:
            break
        }
    }

    func connectionReadEOF(_ c: TCPConnection) {
        // Leaving, not slow: the endpoint must not take refused sends for a lag.
        if state == .open { state = .closeSent }
        c.close(afterFlush: true)
    }

    func connectionDrained(_ c: TCPConnection) {
        if state == .open { endpoint?.streamDrained(self) }
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        state = .closed
        liveness.remove(self)
        closeTimer?.cancel()
        let e = endpoint
        endpoint = nil
        e?.streamClosed(self, code: closeCode)
    }
}
