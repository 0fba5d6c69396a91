import Reactor

/// What a queued message is, as far as the slow-consumer policy cares: the
/// tag a stream keeps beside each queued message, so a lag can drop by kind
/// without parsing any transport's bytes.
enum MessageKind: UInt32 {
    /// Anything that must not be dropped: relay notices, control frames.
    case other = 0
    /// Output, Control, AcpEvent: rebuilt from the replay ring on catch-up.
    case replayable = 1
    /// Snapshot or AcpSnapshot: the catch-up sends the latest again.
    case snapshot = 2
    /// Position: describes frames a lag may drop; the catch-up sends a new one.
    case position = 3
}

/// One connected party of a pod, however it is connected: the interface
/// between pods and transports. Today a WebSocket over TCP
/// (`WebSocketConnection`); later a WebSocket inside an HTTP/2 stream, a
/// gRPC stream or a node link. Every call comes on the stream's loop.
///
/// Frames handed to `send(_:kind:force:coalesce:)` are the pod's encoding
/// of a message, made once and shared by reference by every stream that
/// takes that encoding (today: a server WebSocket frame, header + payload,
/// which is also what WebSocket-over-HTTP/2 carries inside its DATA
/// frames). The stream keeps its queue of messages with their kinds; the
/// pod's policy (bound, lag, catch-up) works on that, never on wire bytes.
///
/// A class to subclass rather than a protocol: the fan-out path calls
/// `send` once per subscriber per frame, and a class reference can be held
/// `Unmanaged` and called through its vtable with no reference counting,
/// where a protocol existential costs an atomic retain and release per call
/// (measured: +80 instructions per delivery). Subclasses override every
/// method; the base class has no state.
class MessageStream {
    /// The loop the stream lives on (the loop outlives it).
    var loop: EventLoop { preconditionFailure("MessageStream.loop not overridden") }
    /// Still accepting messages (not closing).
    var isOpen: Bool { preconditionFailure("MessageStream.isOpen not overridden") }
    /// Bytes queued and not yet written.
    var queuedBytes: Int { preconditionFailure("MessageStream.queuedBytes not overridden") }
    /// What the byte stream under this one negotiated (TLS version, ALPN,
    /// client certificate), for log lines.
    var transportSummary: TransportSummary { TransportSummary() }
    /// The HTTP version and stream kind, for log lines: ("h1", "ws"),
    /// ("h2c" or "h2", "ws-over-h2" or "grpc").
    var transportNames: (http: String, stream: String) { ("h1", "ws") }

    /// Queues a frame the pod encoded (or `messages` of them laid end to
    /// end), by reference. False when the outbound bound refused it (the
    /// stream then reports `streamDrained` once its queue empties) or the
    /// stream is closing. `force` passes the bound; `coalesce` lets adjacent
    /// frames of one arena share an entry (they are then dropped together,
    /// so only for one kind).
    func send(_ frame: SlabSlice, kind: MessageKind, messages: UInt32, force: Bool, coalesce: Bool) -> Bool {
        preconditionFailure("MessageStream.send not overridden")
    }

    func send(_ frame: SlabSlice, kind: MessageKind, force: Bool, coalesce: Bool) -> Bool {
        send(frame, kind: kind, messages: 1, force: force, coalesce: coalesce)
    }

    /// Encodes a relay-made message (`[type][payload]`) for this stream and queues it.
    func send(copying message: UnsafeRawBufferPointer, kind: MessageKind, force: Bool) -> Bool {
        preconditionFailure("MessageStream.send(copying:) not overridden")
    }

    /// Queues a message received on another stream as it came, without a
    /// copy where the transport can (see `ReceivedMessage`).
    func forward(_ message: ReceivedMessage, force: Bool) -> Bool {
        preconditionFailure("MessageStream.forward not overridden")
    }

    /// Drops queued messages for which `drop(kind, count)` is true (never
    /// one partly written). Returns how many messages went.
    func dropQueued(where drop: (MessageKind, Int) -> Bool) -> Int {
        preconditionFailure("MessageStream.dropQueued not overridden")
    }

    /// Stops reading this stream (backpressure on its sender) until resumed.
    func pauseReading() { preconditionFailure("MessageStream.pauseReading not overridden") }
    func resumeReading() { preconditionFailure("MessageStream.resumeReading not overridden") }
    var isReadingPaused: Bool { preconditionFailure("MessageStream.isReadingPaused not overridden") }
    /// Report `streamDrained` the next time the queue empties.
    func notifyWhenDrained() { preconditionFailure("MessageStream.notifyWhenDrained not overridden") }
    /// Ends the stream with a close code (WebSocket close codes; other
    /// transports map them).
    func close(code: UInt16, reason: String) { preconditionFailure("MessageStream.close not overridden") }

    func send(copying message: [UInt8], kind: MessageKind = .other, force: Bool = true) -> Bool {
        message.withUnsafeBytes { send(copying: $0, kind: kind, force: force) }
    }
}

/// A complete message as a stream received it: valid during the callback.
/// `inPlace` is set when the transport can forward it without a copy (for
/// a WebSocket: the message was one whole frame inside the read slab, so
/// a server header fits where the client's header was).
struct ReceivedMessage {
    let payload: UnsafeRawBufferPointer
    /// WebSocket text rather than binary (other transports: false).
    let isText: Bool
    let inPlace: ReceivedFrame?
}
