import Reactor
import Framing

/// Limits and timings of one server-side WebSocket.
struct WebSocketSettings: Sendable {
    var maxMessageSize = 4 << 20
    /// The `Sec-WebSocket-Extensions` answer when permessage-deflate was
    /// negotiated (nil: uncompressed).
    var deflateResponse: String? = nil
}

/// An upgraded connection speaking RFC 6455 as the server: its
/// `WebSocketSession` decodes client frames, answers pings and runs the
/// close handshake; this class carries that out on its TCP connection, adds
/// liveness pings and the close timeout, and hands complete messages to its
/// endpoint. As a `MessageStream` it queues
/// the pod's frames by reference in its TCP connection's outbound queue,
/// each tagged with its `MessageKind`.
final class WebSocketConnection: MessageStream, ConnectionHandler, LivenessMember {
    /// The connection owns this handler, so it outlives every call here;
    /// held unmanaged: no reference counting on the send path.
    private let connectionRef: Unmanaged<TCPConnection>
    var connection: TCPConnection { connectionRef.takeUnretainedValue() }
    var endpoint: (any MessageStreamEndpoint)?
    /// Held across endpoint callbacks, which never touch it; read on the
    /// send path (its state): no runtime exclusivity checks. `closing`: our
    /// Close is out, or the peer's came, or the peer half-closed (TCP FIN):
    /// nothing more is sent but what is queued.
    @exclusivity(unchecked) private var session: WebSocketSession
    // The close timeout is the loop's, in the liveness monitor, not a copy
    // per connection (every idle connection carries these fields).
    /// Position in the loop's liveness monitor (-1: not in it).
    var livenessIndex: Int32 = -1
    private var lastHeard: UInt64
    private var closeTimer: LoopTimer?
    private unowned(unsafe) let liveness: LivenessMonitor
    /// The server's (it outlives every connection).
    private unowned(unsafe) let transports: TransportCounters
    /// permessage-deflate negotiated: the loop's compressor (it outlives
    /// every connection of the loop); nil: uncompressed.
    private unowned(unsafe) let deflate: DeflateEncodingCache?

    /// `liveness` is the monitor of `connection`'s loop, `deflate` its
    /// compression (when this connection negotiated it).
    init(connection: TCPConnection, settings: WebSocketSettings, liveness: LivenessMonitor, transports: TransportCounters,
         deflate: DeflateEncodingCache? = nil) {
        connectionRef = Unmanaged.passUnretained(connection)
        self.liveness = liveness
        self.transports = transports
        self.deflate = deflate
        transports.opened(.ws)
        deflate?.counters.connections.add(1, ordering: .relaxed)
        session = WebSocketSession(expectMasked: true, maxMessageSize: settings.maxMessageSize, compressed: deflate != nil)
        lastHeard = connection.loop.now()
        super.init()
        liveness.add(self)
    }

    override var loop: EventLoop { connection.loop }
    override var isOpen: Bool { session.state == .open }

    // MARK: Sending (MessageStream)

    /// Queues a ready server frame (retained). False when the outbound bound
    /// refused it or the connection is closing: the endpoint decides.
    @discardableResult
    override func send(_ frame: SlabSlice, kind: MessageKind, messages: UInt32, force: Bool, coalesce: Bool) -> Bool {
        guard session.state == .open else { return false }
        // Compressed once per run per loop, shared by every compressing subscriber.
        let out = deflate.map { $0.encoding(of: frame, keep: kind == .replayable || kind == .snapshot) } ?? frame
        return connectionRef._withUnsafeGuaranteedRef {
            $0.enqueue(out, tag: kind.rawValue, messages: messages, force: force, coalesce: coalesce)
        }
    }

    /// Copies `message` into a new binary frame and queues it.
    @discardableResult
    override func send(copying message: UnsafeRawBufferPointer, kind: MessageKind, force: Bool) -> Bool {
        send(opcode: .binary, copying: message, kind: kind, force: force)
    }

    @discardableResult
    func send(opcode: WebSocketOpcode, copying payload: UnsafeRawBufferPointer, kind: MessageKind = .other, force: Bool = false) -> Bool {
        guard session.state == .open else { return false }
        let slab = deflate.map { $0.frame(payload, opcode: opcode) } ?? ServerFrame.copy(opcode: opcode, payload: payload)
        defer { slab.release() }
        return connection.enqueue(slab.written, tag: kind.rawValue, force: force)
    }

    /// A client's message as a server frame: re-encoded in place inside the
    /// read slab when it was one whole frame there and will most likely
    /// leave this turn (a queued in-place frame pins the loop's shared read
    /// slab), else copied.
    override func forward(_ message: ReceivedMessage, force: Bool) -> Bool {
        guard session.state == .open else { return false }
        let opcode: WebSocketOpcode = message.isText ? .text : .binary
        if let frame = message.inPlace, connection.queuedBytes == 0, deflate == nil {
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
    override var transportSummary: TransportSummary { connection.transport.summary }

    /// Starts the close handshake: our Close now, the TCP close when the
    /// peer answers (or after `closeTimeout`).
    override func close(code: UInt16, reason: String = "") {
        guard let payload = session.close(code: code, reason: reason) else { return }
        sendControl(.close, payload)
        closeTimer = loop.schedule(afterNanoseconds: liveness.closeTimeout) { [unowned self] in
            connection.close()
        }
    }

    /// Close and Ping are queued past the bound (they are rare and must not
    /// be lost); a Pong is not: a peer that pings without reading gets no
    /// more answers (RFC 6455 §5.5.3 allows answering only the latest Ping),
    /// so it cannot grow our queue.
    private func sendControl(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        payload.withUnsafeBytes { sendControl(opcode, $0) }
    }

    private func sendControl(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        let slab = ServerFrame.copy(opcode: opcode, payload: payload)
        connection.enqueue(slab.written, force: opcode != .pong)
        slab.release()
    }

    // MARK: Liveness

    /// Called by the loop's liveness monitor once per interval.
    func checkLiveness(now: UInt64, interval: UInt64) {
        guard session.state != .closed else { return }
        // While we hold its reading back (backpressure), its Pongs wait
        // unread in the kernel: that is not silence.
        if connection.isReadingPaused { lastHeard = now }
        if now &- lastHeard >= 2 * interval {
            // Half-open: nothing heard for two intervals.
            session.transportAbandoned()
            connection.close()
            return
        }
        if session.state == .open { sendControl(.ping, []) }
    }

    // MARK: ConnectionHandler

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        lastHeard = loop.turnStart
        feed(bytes)
    }

    /// Decodes `bytes` (which may be a slice of a read slab or of a copy).
    func feed(_ bytes: SlabSlice) {
        let base = UnsafeMutableRawPointer(mutating: bytes.start)
        let input = UnsafeMutableRawBufferPointer(start: base, count: bytes.count)
        session.receive(input, inflater: deflate?.codec) { action in
            switch action {
            case .deliver(let opcode, let payload, let location):
                guard let endpoint else { return }
                var frame: ReceivedFrame? = nil
                if case .input(let frameStart, let payloadOffset) = location {
                    frame = ReceivedFrame(slab: bytes.slab, payloadStart: UnsafeRawPointer(base + payloadOffset),
                                          payloadCount: payload.count, headerRoom: payloadOffset - frameStart)
                }
                endpoint.stream(self, received: ReceivedMessage(payload: payload, isText: opcode == .text, inPlace: frame))
            case .send(let opcode, let payload):
                sendControl(opcode, payload)
            case .closeTransport:
                connection.close(afterFlush: true)
            }
        }
        endpoint?.streamReadDone(self)
    }

    func connectionReadEOF(_ c: TCPConnection) {
        // Leaving, not slow: the endpoint must not take refused sends for a lag.
        if session.transportEnded() { c.close(afterFlush: true) }
    }

    func connectionDrained(_ c: TCPConnection) {
        if session.state == .open { endpoint?.streamDrained(self) }
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        session.transportClosed()
        liveness.remove(self)
        transports.closed(.ws)
        deflate?.counters.connections.add(-1, ordering: .relaxed)
        transports.closed(.h1)
        closeTimer?.cancel()
        let e = endpoint
        endpoint = nil
        e?.streamClosed(self, code: session.closeCode)
    }
}
