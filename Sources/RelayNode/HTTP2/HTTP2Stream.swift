import Reactor
import Framing

/// One stream of an HTTP/2 connection that carries messages (a WebSocket
/// over HTTP/2, a gRPC call) or a plain response: what every such stream
/// shares, the subclasses add their framing.
///
/// Output: the stream's own bounded queue of slices, shared by reference
/// with the pod (the same slices every other subscriber queues). nghttp2
/// pulls from it as the peer's windows allow (`dataReady`), and the
/// connection moves what a DATA frame carries into its socket queue by
/// reference (`takeData`). So a stream whose window is closed fills only
/// its own queue, and at the bound its sends are refused: the pod's
/// slow-consumer policy applies to it as to any subscriber, and the other
/// streams of the connection go on.
///
/// Input: DATA is handed to `deliver` and its window given back; while the
/// stream is paused (backpressure) DATA is held instead and the window is
/// not given back, so the peer stops after one window (`streamWindow`).
///
/// Loop-confined to its connection's loop.
class HTTP2Stream: MessageStream {
    /// The connection owns its streams and outlives them.
    unowned(unsafe) let owner: HTTP2ServerConnection
    let id: Int32
    @exclusivity(unchecked) var queue: OutboundQueue
    /// nghttp2 was told there is nothing (DEFERRED): resume it on the next byte.
    @exclusivity(unchecked) private var deferred = false
    /// The stream ends after its queue: END_STREAM on the last DATA, or trailers.
    @exclusivity(unchecked) private(set) var ending: [HTTP2Header]?? = nil
    @exclusivity(unchecked) private var notifyOnDrain = false
    @exclusivity(unchecked) private(set) var paused = false
    /// DATA received while paused (at most one stream window).
    private var held: [UInt8] = []
    /// The stream is gone (closed by either side); nothing more happens.
    @exclusivity(unchecked) private(set) var isClosed = false

    init(owner: HTTP2ServerConnection, id: Int32, outboundLimit: Int) {
        self.owner = owner
        self.id = id
        queue = OutboundQueue(limit: outboundLimit)
        super.init()
    }

    override var loop: EventLoop { owner.loop }
    /// A plain response stream: open until its queue has left.
    override var isOpen: Bool { !isClosed }
    /// A plain response ends by itself; message streams override.
    override func close(code: UInt16, reason: String) {}
    override var queuedBytes: Int { queue.bytes }
    override var transportSummary: TransportSummary { owner.transportSummary }

    // MARK: Output

    /// Queues `slice` and wakes nghttp2 for this stream.
    final func enqueue(_ slice: SlabSlice, tag: UInt32, messages: UInt32 = 1, force: Bool, coalesce: Bool = false) -> Bool {
        guard !isClosed, ending == nil else { return false }
        guard queue.enqueue(slice, tag: tag, messages: messages, force: force, coalesce: coalesce) else {
            notifyOnDrain = true
            return false
        }
        wake()
        return true
    }

    /// Copies `bytes` into a slab of its own and queues it.
    final func enqueue(copying bytes: UnsafeRawBufferPointer, tag: UInt32 = 0, force: Bool) -> Bool {
        let slab = Slab.copying(bytes)
        defer { slab.release() }
        return enqueue(slab.written, tag: tag, force: force)
    }

    private func wake() {
        if deferred {
            deferred = false
            owner.resume(self)
        } else {
            owner.scheduleSend()
        }
    }

    /// Ends the stream once the queue has left: with END_STREAM on the last
    /// DATA, or with `trailers`.
    final func finish(trailers: [HTTP2Header]? = nil) {
        guard !isClosed, ending == nil else { return }
        ending = .some(trailers)
        wake()
    }

    /// nghttp2 asks what is ready, up to `max` bytes.
    final func dataReady(max: Int) -> HTTP2DataReady {
        let n = min(max, queue.bytes)
        if let ending, n == queue.bytes {
            if let trailers = ending { owner.submitTrailers(self, trailers) }
            // Our side is complete (a response, trailers, or a WebSocket
            // whose Closes have crossed): a peer that has not ended its side
            // is told to stop, without error (RFC 9113 §8.1), once this last
            // frame has gone (a later send), so the stream cannot be held
            // open by a peer that never sends END_STREAM.
            loop.runLater { [self] in if !isClosed { reset(.noError) } }
            return .bytes(n, end: true, trailers: ending != nil)
        }
        if n == 0 {
            deferred = true
            return .deferred
        }
        return .bytes(n, end: false, trailers: false)
    }

    /// The next `length` bytes of the queue, by reference, to `take`.
    final func takeData(_ length: Int, _ take: (SlabSlice) -> Void) {
        _ = queue.transfer(upTo: length, take)
        if queue.isEmpty && notifyOnDrain {
            notifyOnDrain = false
            // Not from inside nghttp2's send: the endpoint may queue more.
            loop.runLater { [self] in if !isClosed { queueDrained() } }
        }
    }

    override final func dropQueued(where drop: (MessageKind, Int) -> Bool) -> Int {
        queue.removeAll { tag, count in drop(MessageKind(rawValue: tag) ?? .other, count) }
    }

    override final func notifyWhenDrained() {
        notifyOnDrain = true
        if queue.isEmpty {
            loop.runLater { [self] in
                if notifyOnDrain && queue.isEmpty && !isClosed {
                    notifyOnDrain = false
                    queueDrained()
                }
            }
        }
    }

    /// The queue emptied after a refused send or `notifyWhenDrained`.
    func queueDrained() {}

    // MARK: Input

    /// DATA for this stream (valid during the call).
    final func received(_ data: UnsafeRawBufferPointer) {
        if paused || !held.isEmpty {
            held.append(contentsOf: data)
            return
        }
        deliver(data)
        owner.consume(self, data.count)
    }

    override final func pauseReading() { paused = true }

    override final func resumeReading() {
        guard paused else { return }
        paused = false
        guard !held.isEmpty else { return }
        loop.runLater { [self] in
            guard !paused, !isClosed, !held.isEmpty else { return }
            let bytes = held
            held = []
            bytes.withUnsafeBytes { deliver($0) }
            owner.consume(self, bytes.count)
        }
    }

    override final var isReadingPaused: Bool { paused }

    /// Message bytes from the peer (subclasses decode them).
    func deliver(_ data: UnsafeRawBufferPointer) {}

    /// The peer sent END_STREAM.
    func peerEnded() {}

    /// The stream is closed (both sides done, or reset): called once.
    final func closedByPeerOrUs(errorCode: UInt32) {
        guard !isClosed else { return }
        isClosed = true
        queue.removeAll()
        held = []
        streamGone(errorCode: errorCode)
    }

    /// Subclasses tell their endpoint.
    func streamGone(errorCode: UInt32) {}

    /// A reset from our side (nghttp2 then reports the close).
    final func reset(_ code: HTTP2ErrorCode) {
        guard !isClosed else { return }
        owner.resetStream(self, code: code)
    }
}
