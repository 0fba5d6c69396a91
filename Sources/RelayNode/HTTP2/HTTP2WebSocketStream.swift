import Reactor
import Framing

/// A WebSocket carried by one HTTP/2 stream (RFC 8441): the same
/// `WebSocketSession` codec as over TCP, with the stream as its transport.
/// The pod's frames (server WebSocket frames, built once) go into the
/// stream's queue by reference; a Close that is answered ends the stream
/// (END_STREAM), the peer's END_STREAM is its leaving, a reset is a
/// transport gone (1006).
///
/// Liveness is the connection's (HTTP/2 PING), not per stream. Loop-confined.
final class HTTP2WebSocketStream: HTTP2Stream {
    var endpoint: (any MessageStreamEndpoint)?
    @exclusivity(unchecked) private var session: WebSocketSession
    private var closeTimer: LoopTimer?
    private let closeTimeout: UInt64
    /// permessage-deflate negotiated in the CONNECT: the loop's compressor
    /// (it outlives every stream of the loop).
    private unowned(unsafe) let deflate: DeflateEncodingCache?

    init(owner: HTTP2ServerConnection, id: Int32, outboundLimit: Int, maxMessageSize: Int, closeTimeout: UInt64,
         deflate: DeflateEncodingCache? = nil) {
        session = WebSocketSession(expectMasked: true, maxMessageSize: maxMessageSize, compressed: deflate != nil)
        self.closeTimeout = closeTimeout
        self.deflate = deflate
        deflate?.counters.connections.add(1, ordering: .relaxed)
        super.init(owner: owner, id: id, outboundLimit: outboundLimit)
    }

    override var isOpen: Bool { session.state == .open }
    override var transportNames: (http: String, stream: String) { (owner.kind.name, "ws-over-h2") }

    // MARK: MessageStream

    override func send(_ frame: SlabSlice, kind: MessageKind, messages: UInt32, force: Bool, coalesce: Bool) -> Bool {
        guard session.state == .open else { return false }
        let out = deflate.map { $0.encoding(of: frame, keep: kind == .replayable || kind == .snapshot) } ?? frame
        return enqueue(out, tag: kind.rawValue, messages: messages, force: force, coalesce: coalesce)
    }

    override func send(copying message: UnsafeRawBufferPointer, kind: MessageKind, force: Bool) -> Bool {
        send(opcode: .binary, copying: message, kind: kind, force: force)
    }

    private func send(opcode: WebSocketOpcode, copying payload: UnsafeRawBufferPointer, kind: MessageKind = .other, force: Bool) -> Bool {
        guard session.state == .open else { return false }
        let slab = deflate.map { $0.frame(payload, opcode: opcode) } ?? ServerFrame.copy(opcode: opcode, payload: payload)
        defer { slab.release() }
        return enqueue(slab.written, tag: kind.rawValue, force: force)
    }

    override func forward(_ message: ReceivedMessage, force: Bool) -> Bool {
        send(opcode: message.isText ? .text : .binary, copying: message.payload, force: force)
    }

    override func close(code: UInt16, reason: String) {
        guard let payload = session.close(code: code, reason: reason) else { return }
        sendControl(.close, payload)
        closeTimer = loop.schedule(afterNanoseconds: closeTimeout) { [unowned self] in reset(.cancel) }
    }

    private func sendControl(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        let slab = ServerFrame.copy(opcode: opcode, payload: payload)
        defer { slab.release() }
        // As over TCP: Close and Ping pass the bound, a Pong does not.
        _ = enqueue(slab.written, tag: 0, force: opcode != .pong)
    }

    private func sendControl(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        payload.withUnsafeBytes { sendControl(opcode, $0) }
    }

    override func queueDrained() {
        if session.state == .open { endpoint?.streamDrained(self) }
    }

    // MARK: HTTP2Stream

    override func deliver(_ data: UnsafeRawBufferPointer) {
        // DATA sits in the loop's read slab (or the held copy): unmasked in place.
        let input = UnsafeMutableRawBufferPointer(mutating: data)
        session.receive(input, inflater: deflate?.codec) { action in
            switch action {
            case .deliver(let opcode, let payload, _):
                endpoint?.stream(self, received: ReceivedMessage(payload: payload, isText: opcode == .text, inPlace: nil))
            case .send(let opcode, let payload):
                sendControl(opcode, payload)
            case .closeTransport:
                finish()
            }
        }
        endpoint?.streamReadDone(self)
    }

    override func peerEnded() {
        // The peer is leaving (like a TCP FIN): end our side too.
        if session.transportEnded() { finish() }
    }

    override func streamGone(errorCode: UInt32) {
        deflate?.counters.connections.add(-1, ordering: .relaxed)
        session.transportClosed()
        closeTimer?.cancel()
        let e = endpoint
        endpoint = nil
        e?.streamClosed(self, code: session.closeCode)
    }
}
