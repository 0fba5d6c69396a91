import Reactor
import Framing

/// One `relay.v1.Relay/Attach` call: a bidirectional gRPC stream whose
/// messages are `Frame { bytes data = 1; }`, `data` being the relay
/// envelope `[type][payload]` (proto/relay/v1/relay.proto).
///
/// No copy per subscriber on the way out: the pod's run of frames (server
/// WebSocket frames, built once) is encoded as gRPC messages once per loop
/// (`GRPCEncodingCache`) and every gRPC stream of the loop queues that one
/// slice.
///
/// The call ends with trailers: `grpc-status` from the close code (see
/// `status(forClose:)`), `grpc-message` with the reason. Loop-confined.
final class GRPCStream: HTTP2Stream {
    var endpoint: (any MessageStreamEndpoint)?
    private var reader: GRPCMessageReader
    private var open = true
    /// The close code this side ended with, or the peer's way of leaving.
    private var closeCode: UInt16 = WebSocketCloseCode.abnormal
    private var deadline: LoopTimer?
    /// The loop's (it outlives every stream).
    private unowned(unsafe) let encodings: GRPCEncodingCache

    init(owner: HTTP2ServerConnection, id: Int32, outboundLimit: Int, maxMessageSize: Int, timeout: UInt64?,
         encodings: GRPCEncodingCache) {
        reader = GRPCMessageReader(maxMessageSize: maxMessageSize)
        self.encodings = encodings
        super.init(owner: owner, id: id, outboundLimit: outboundLimit)
        if let timeout {
            deadline = owner.loop.schedule(afterNanoseconds: timeout) { [unowned self] in
                end(status: .deadlineExceeded, message: "deadline exceeded", code: WebSocketCloseCode.goingAway)
            }
        }
    }

    override var isOpen: Bool { open }
    override var transportNames: (http: String, stream: String) { (owner.kind.name, "grpc") }

    // MARK: MessageStream

    /// `frame` holds `messages` server WebSocket frames laid end to end
    /// (unmasked: 2, 4 or 10 header bytes); each becomes one gRPC message.
    override func send(_ frame: SlabSlice, kind: MessageKind, messages: UInt32, force: Bool, coalesce: Bool) -> Bool {
        guard open else { return false }
        return enqueue(encodings.encoding(of: frame), tag: kind.rawValue, messages: messages, force: force, coalesce: coalesce)
    }

    override func send(copying message: UnsafeRawBufferPointer, kind: MessageKind, force: Bool) -> Bool {
        guard open else { return false }
        let n = GRPCFrameCodec.prefixSize(payloadLength: message.count)
        let slab = Slab.allocate(capacity: n + message.count)
        defer { slab.release() }
        GRPCFrameCodec.writePrefix(payloadLength: message.count, to: slab.base)
        if message.count > 0 { (slab.base + n).copyMemory(from: message.baseAddress!, byteCount: message.count) }
        slab.used = n + message.count
        return enqueue(slab.written, tag: kind.rawValue, force: force)
    }

    override func forward(_ message: ReceivedMessage, force: Bool) -> Bool {
        send(copying: message.payload, kind: .other, force: force)
    }

    override func close(code: UInt16, reason: String) {
        end(status: Self.status(forClose: code), message: reason, code: code)
    }

    /// Ends the call with trailers after what is queued.
    func end(status: GRPCStatus, message: String, code: UInt16) {
        guard open else { return }
        open = false
        closeCode = code
        deadline?.cancel()
        var trailers = [HTTP2Header("grpc-status", String(status.rawValue))]
        if !message.isEmpty { trailers.append(HTTP2Header("grpc-message", GRPCStatus.encodeMessage(message))) }
        finish(trailers: trailers)
    }

    override func queueDrained() {
        if open { endpoint?.streamDrained(self) }
    }

    // MARK: HTTP2Stream

    override func deliver(_ data: UnsafeRawBufferPointer) {
        let failure = reader.receive(data) { message in
            guard open else { return }
            switch GRPCFrameCodec.data(of: message) {
            case .success(let envelope):
                endpoint?.stream(self, received: ReceivedMessage(payload: envelope, isText: false, inPlace: nil))
            case .failure:
                end(status: .invalidArgument, message: "malformed relay.v1.Frame", code: WebSocketCloseCode.protocolError)
            }
        }
        switch failure {
        case .tooLarge(let n)?:
            end(status: .resourceExhausted, message: "message of \(n) bytes is over the limit of \(reader.maxMessageSize)",
                code: WebSocketCloseCode.messageTooBig)
        case .compressed?:
            end(status: .internalError, message: "compressed messages are not accepted (no grpc-encoding offered)",
                code: WebSocketCloseCode.protocolError)
        case nil:
            break
        }
        endpoint?.streamReadDone(self)
    }

    override func peerEnded() {
        // The client half-closed: it is leaving; the call ends OK.
        end(status: .ok, message: "", code: WebSocketCloseCode.normal)
    }

    override func streamGone(errorCode: UInt32) {
        open = false
        deadline?.cancel()
        let e = endpoint
        endpoint = nil
        // A reset, or the call's end: the code we ended with, else 1006.
        e?.streamClosed(self, code: closeCode)
    }

    // MARK: Mapping

    /// How a relay close code ends a call (docs/protocol.md §1.2).
    static func status(forClose code: UInt16) -> GRPCStatus {
        switch code {
        case WebSocketCloseCode.normal: return .ok
        case WebSocketCloseCode.goingAway: return .unavailable
        case WebSocketCloseCode.policyViolation, WebSocketCloseCode.messageTooBig, 4008: return .resourceExhausted
        case WebSocketCloseCode.protocolError, WebSocketCloseCode.invalidPayload: return .invalidArgument
        default: return .unavailable
        }
    }

    /// Header size and payload length of the server frame at `p`.
    static func serverFrame(_ p: UnsafeRawPointer) -> (Int, Int) {
        let len7 = Int(p.load(fromByteOffset: 1, as: UInt8.self) & 0x7F)
        switch len7 {
        case 126:
            return (4, Int(p.load(fromByteOffset: 2, as: UInt8.self)) << 8 | Int(p.load(fromByteOffset: 3, as: UInt8.self)))
        case 127:
            var n = 0
            for i in 2..<10 { n = n << 8 | Int(p.load(fromByteOffset: i, as: UInt8.self)) }
            return (10, n)
        default:
            return (2, len7)
        }
    }
}
