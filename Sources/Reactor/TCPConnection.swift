import Glibc
import CReactor

/// A nonblocking stream on one loop, with a bounded outbound queue flushed
/// once per loop turn (cork) and one read per readiness event (more while
/// the transport holds decoded input epoll cannot see, up to `maxRead`).
///
/// Ownership: the loop's fd table holds the one strong reference while the
/// connection is open; the connection holds its handler strongly until it
/// closes (the handler should refer back with `unowned`).
///
/// Lifecycle (`Phase`), every transition there is; anything else is ignored
/// (a second close, a shutdown after close):
///
/// | from                          | on                                   | to                                  |
/// |-------------------------------|--------------------------------------|-------------------------------------|
/// | connecting                    | connect completes                    | open, or handshaking (TLS)          |
/// | connecting                    | connect fails                        | closed                              |
/// | handshaking                   | the transport's handshake completes  | open                                |
/// | handshaking                   | handshake fails, `close(afterFlush:)`| closed                              |
/// | open                          | `shutdownWrite()`, queue empty       | writeShut (FIN sent)                |
/// | open                          | `shutdownWrite()`, queue not empty   | shutdownAfterFlush                  |
/// | shutdownAfterFlush            | queue drained                        | writeShut (FIN sent)                |
/// | open, shutdownAfterFlush,     | `close(afterFlush: true)`,           | closeAfterFlush                     |
/// |   writeShut                   |   queue not empty                    |                                     |
/// | closeAfterFlush               | queue drained                        | lingering, or closed if peer's FIN  |
/// | open, shutdownAfterFlush,     | `close(afterFlush: true)`,           | lingering, or closed if peer's FIN  |
/// |   writeShut                   |   queue empty                        |                                     |
/// | lingering                     | peer's FIN, read error, linger time  | closed                              |
/// | any but closed                | `close()`, write or read error       | closed                              |
///
/// Lingering close: closing a socket with unread input makes the kernel send
/// RST, and the peer may then lose what was sent last (a Close frame, an
/// error response). So a graceful close sends FIN, then reads and discards
/// the peer's input until its FIN, for at most `lingerTimeout`. The handler
/// hears `connectionClosed` when the lingering starts: it is done with the
/// connection then, whatever the peer still sends.
///
/// A connection adopted with a transport whose handshake is not complete
/// starts in `handshaking`: bytes may be queued but leave only once it is
/// open, and the handler hears `connectionConnected` when it opens.
///
/// Besides the phase, four independent conditions: the owner paused reading
/// (backpressure), the peer's FIN was read, the socket is full (EPOLLOUT
/// armed), and the owner asked to hear when the queue drains.
public final class TCPConnection: Selectable, Flushable {
    /// The loop outlives its connections (it closes them before it goes):
    /// unowned(unsafe), so scheduling a flush costs no reference counting.
    public unowned(unsafe) let loop: EventLoop
    public let transport: any Transport
    public let fd: Int32
    public var handler: (any ConnectionHandler)?

    /// Touched only on the loop thread and never re-entered (flush calls out
    /// only to the transport): no runtime exclusivity check on the hot path.
    @exclusivity(unchecked) private var outbound: OutboundQueue

    enum Phase: UInt8 {
        case connecting, handshaking, open, shutdownAfterFlush, writeShut, closeAfterFlush, lingering, closed
        /// Bytes may still be queued.
        var acceptsWrites: Bool { self == .open || self == .handshaking }
        /// The peer's bytes go to the handler.
        var deliversReads: Bool { self == .open || self == .shutdownAfterFlush || self == .writeShut }
    }
    private(set) var phase: Phase
    private var interest: UInt32 = 0
    private var flushScheduled = false
    private var awaitingWritable = false
    private var readPaused = false
    public private(set) var readEOF = false
    private var notifyOnDrain = false
    private var lingerTimer: LoopTimer?
    /// What the transport's handshake waits for (epoll bits).
    private var handshakeInterest: UInt32 = 0
    /// A read is scheduled for input the transport holds (`runLater`).
    private var bufferedReadScheduled = false

    /// Largest single read (bytes), so one busy peer cannot take a whole slab.
    public static let maxRead = 64 * 1024
    /// How long a lingering close waits for the peer's FIN.
    public var lingerTimeout: UInt64 = 2_000_000_000

    private init(loop: EventLoop, transport: any Transport, connecting: Bool, outboundLimit: Int) {
        self.loop = loop
        self.transport = transport
        fd = transport.fd
        outbound = OutboundQueue(limit: outboundLimit)
        phase = connecting ? .connecting : transport.isHandshakeComplete ? .open : .handshaking
    }

    /// Adopts an accepted (or otherwise connected) nonblocking socket.
    public static func adopt(fd: Int32, on loop: EventLoop, outboundLimit: Int = 1 << 20) throws(SystemError) -> TCPConnection {
        try adopt(transport: PlainTransport(fd: fd), on: loop, outboundLimit: outboundLimit)
    }

    /// Adopts a connected transport (a socket, or an in-memory one in tests).
    public static func adopt(transport: any Transport, on loop: EventLoop, outboundLimit: Int = 1 << 20) throws(SystemError) -> TCPConnection {
        let c = TCPConnection(loop: loop, transport: transport, connecting: false, outboundLimit: outboundLimit)
        c.interest = CREACTOR_EPOLLIN | CREACTOR_EPOLLRDHUP
        c.handshakeInterest = CREACTOR_EPOLLIN
        try loop.register(fd: c.fd, events: c.interest, handler: c)
        // Moved from another loop with input already decoded (TLS): epoll
        // will not announce it.
        if c.phase == .open && transport.hasBufferedInput { c.scheduleBufferedRead() }
        return c
    }

    /// Starts connecting; the handler hears `connectionConnected` (after the
    /// transport's handshake, if it has one) or `connectionClosed(error:)`.
    /// `transport` wraps the connecting socket (default: plain TCP).
    public static func connect(
        to address: SocketAddress, from source: SocketAddress? = nil, on loop: EventLoop,
        handler: any ConnectionHandler, outboundLimit: Int = 1 << 20, configure: ((Int32) -> Void)? = nil,
        transport makeTransport: ((Int32) throws -> any Transport)? = nil
    ) throws -> TCPConnection {
        let fd = try Socket.connect(to: address, from: source, configure: configure)
        Socket.setNoDelay(fd)
        let transport: any Transport
        do {
            transport = try makeTransport?(fd) ?? PlainTransport(fd: fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        let c = TCPConnection(loop: loop, transport: transport, connecting: true, outboundLimit: outboundLimit)
        c.handler = handler
        c.interest = CREACTOR_EPOLLOUT
        do {
            try loop.register(fd: fd, events: c.interest, handler: c)
        } catch {
            transport.close()
            throw error
        }
        return c
    }

    public var isOpen: Bool { phase != .closed }
    /// The transport's handshake has completed (always, for plain TCP).
    public var isEstablished: Bool { phase != .connecting && phase != .handshaking && transport.isHandshakeComplete }
    public var queuedBytes: Int { outbound.bytes }
    public var outboundLimit: Int {
        get { outbound.limit }
        set { outbound.limit = newValue }
    }

    // MARK: Writing

    /// Queues `slice` (retaining it) to leave at the end of this turn.
    /// Returns false, queuing nothing, when that would pass the outbound
    /// limit or the connection is closed or closing; the handler then hears
    /// `connectionDrained` once the queue empties. `force` ignores the limit.
    /// `tag` and `coalesce`: see `OutboundQueue.enqueue`.
    @discardableResult
    public func enqueue(_ slice: SlabSlice, tag: UInt32 = 0, messages: UInt32 = 1, force: Bool = false, coalesce: Bool = false) -> Bool {
        guard phase.acceptsWrites else { return false }
        guard outbound.enqueue(slice, tag: tag, messages: messages, force: force, coalesce: coalesce) else {
            notifyOnDrain = true
            return false
        }
        if !flushScheduled && !awaitingWritable {
            flushScheduled = true
            loop.scheduleFlush(self)
        }
        return true
    }

    /// Copies `bytes` into a new slab and queues it (for small, rare frames).
    @discardableResult
    public func enqueue(copying bytes: UnsafeRawBufferPointer, force: Bool = true) -> Bool {
        let slab = Slab.copying(bytes)
        defer { slab.release() }
        return enqueue(slab.written, force: force)
    }

    @discardableResult
    public func enqueue(copying bytes: [UInt8], force: Bool = true) -> Bool {
        bytes.withUnsafeBytes { enqueue(copying: $0, force: force) }
    }

    /// Ask for `connectionDrained` the next time the queue empties.
    /// Drained means nothing waits, the transport's own output included
    /// (a TLS record cut by a lag sits there).
    public func notifyWhenDrained() {
        notifyOnDrain = true
        if phase == .open && outbound.isEmpty && !transport.hasPendingOutput {
            loop.runLater { [self] in
                // The phase first: a transport is not asked anything once
                // the connection has closed it.
                if phase == .open && notifyOnDrain && outbound.isEmpty && !transport.hasPendingOutput {
                    notifyOnDrain = false
                    handler?.connectionDrained(self)
                }
            }
        }
    }

    /// Drops queued entries for which `drop(tag, slices)` is true, never
    /// one partly written (a frame is never cut). Returns how many slices
    /// were dropped.
    public func dropQueued(where drop: (_ tag: UInt32, _ slices: Int) -> Bool) -> Int {
        outbound.removeAll(where: drop)
    }

    public func flushQueued() {
        flushScheduled = false
        guard phase != .closed, phase != .connecting, phase != .handshaking, !awaitingWritable else { return }
        flush()
    }

    private func scheduleFlush() {
        if !flushScheduled && !awaitingWritable {
            flushScheduled = true
            loop.scheduleFlush(self)
        }
    }

    private func flush() {
        var result = outbound.flush(iovecs: loop.iovecs) { iov, n in transport.writev(iov, count: n) }
        // The transport's own bytes (encrypted records, close_notify) must
        // leave too before the queue counts as drained.
        if result == .drained && transport.hasPendingOutput {
            switch transport.flushPending() {
            case .bytes, .eof: break
            case .wouldBlock: result = .wouldBlock
            case .error(let e): result = .failed(e)
            }
        }
        switch result {
        case .drained:
            if awaitingWritable {
                awaitingWritable = false
                updateInterest()
            }
            switch phase {
            case .closeAfterFlush:
                finishWriting()
            case .shutdownAfterFlush:
                phase = .writeShut
                shutdownTransport()
                drained()
            case .open, .writeShut:
                drained()
            case .connecting, .handshaking, .lingering, .closed:
                break
            }
        case .wouldBlock:
            if !awaitingWritable {
                awaitingWritable = true
                updateInterest()
            }
        case .failed(let e):
            close(error: e)
        }
    }

    private func drained() {
        if notifyOnDrain {
            notifyOnDrain = false
            handler?.connectionDrained(self)
        }
    }

    // MARK: Reading

    /// Stops reading (TCP backpressure on the peer) until `resumeReading()`.
    public func pauseReading() {
        guard !readPaused else { return }
        readPaused = true
        updateInterest()
    }

    public func resumeReading() {
        guard readPaused else { return }
        readPaused = false
        updateInterest()
        if transport.hasBufferedInput { scheduleBufferedRead() }
    }

    public var isReadingPaused: Bool { readPaused }

    /// One read, then more while the transport holds input epoll cannot
    /// announce (TLS records read ahead), up to `maxRead` bytes per event;
    /// the rest after the other connections' events (a deferred job), so
    /// one peer cannot hold the loop.
    private func readAvailable() {
        var budget = Self.maxRead
        while true {
            let n = readOnce(limit: budget)
            budget -= n
            guard n > 0, wantsRead, transport.hasBufferedInput else { break }
            if budget <= 0 {
                scheduleBufferedRead()
                break
            }
        }
        // Reading may have produced output of the transport's own (a TLS
        // key update's answer, session tickets).
        if phase != .closed && transport.hasPendingOutput { scheduleFlush() }
    }

    private func scheduleBufferedRead() {
        guard !bufferedReadScheduled else { return }
        bufferedReadScheduled = true
        loop.runLater { [self] in
            bufferedReadScheduled = false
            if phase != .closed && wantsRead && transport.hasBufferedInput { readAvailable() }
        }
    }

    /// Returns the bytes read (0 when none, or when the connection stopped).
    private func readOnce(limit: Int) -> Int {
        let slab = loop.readBuffer.prepare()
        let start = slab.base + slab.used
        let room = min(slab.capacity - slab.used, limit)
        switch transport.read(into: UnsafeMutableRawBufferPointer(start: start, count: room)) {
        case .bytes(let n):
            // Lingering: the bytes are read only so the close is not a reset.
            guard phase != .lingering else { return n }
            slab.used += n
            handler?.connectionRead(self, SlabSlice(slab: Unmanaged.passUnretained(slab), start: UnsafeRawPointer(start), count: n))
            return n
        case .wouldBlock:
            return 0
        case .eof:
            readEOF = true
            if phase == .lingering {
                close()
                return 0
            }
            updateInterest()
            handler?.connectionReadEOF(self)
            return 0
        case .error(let e):
            close(error: e)
            return 0
        }
    }

    // MARK: Handshake

    private func continueHandshake() {
        switch transport.handshake() {
        case .done:
            phase = .open
            updateInterest()
            if !outbound.isEmpty || transport.hasPendingOutput { scheduleFlush() }
            handler?.connectionConnected(self)
            if phase != .closed && transport.hasBufferedInput { scheduleBufferedRead() }
        case .wantRead:
            handshakeInterest = CREACTOR_EPOLLIN
            updateInterest()
        case .wantWrite:
            handshakeInterest = CREACTOR_EPOLLOUT
            updateInterest()
        case .failed(let e):
            close(error: e)
        }
    }

    // MARK: Events

    public func handleEvents(_ events: UInt32) {
        if phase == .connecting {
            let e = Socket.pendingError(fd)
            if e != 0 {
                close(error: SystemError("connect", code: e))
                return
            }
            if transport.isHandshakeComplete {
                phase = .open
                updateInterest()
                handler?.connectionConnected(self)
            } else {
                phase = .handshaking
                continueHandshake()
            }
            return
        }
        if phase == .handshaking {
            continueHandshake()
            return
        }
        if events & CREACTOR_EPOLLOUT != 0 && awaitingWritable {
            awaitingWritable = false
            flush()
            if !awaitingWritable { updateInterest() }
        }
        guard phase != .closed else { return }
        let readable = events & (CREACTOR_EPOLLIN | CREACTOR_EPOLLRDHUP | CREACTOR_EPOLLHUP | CREACTOR_EPOLLERR) != 0
        if readable && wantsRead {
            readAvailable()
        } else if events & CREACTOR_EPOLLERR != 0 {
            close(error: SystemError("socket", code: Socket.pendingError(fd)))
        } else if events & CREACTOR_EPOLLHUP != 0 {
            // Both directions are gone and we are not reading: nothing left to do.
            close()
        }
    }

    /// Reading is wanted: the handler's (unless paused), or a lingering close's.
    private var wantsRead: Bool {
        if readEOF { return false }
        if phase == .lingering { return true }
        return phase.deliversReads && !readPaused
    }

    private func updateInterest() {
        guard phase != .closed else { return }
        var wanted: UInt32 = 0
        if phase == .connecting {
            wanted = CREACTOR_EPOLLOUT
        } else if phase == .handshaking {
            wanted = handshakeInterest
        } else {
            if wantsRead { wanted |= CREACTOR_EPOLLIN | CREACTOR_EPOLLRDHUP }
            if awaitingWritable { wanted |= CREACTOR_EPOLLOUT }
        }
        if wanted != interest {
            interest = wanted
            loop.modify(fd: fd, events: wanted)
        }
    }

    // MARK: Closing

    /// Sends FIN once everything queued is written; reading goes on.
    public func shutdownWrite() {
        guard phase == .open else { return }
        if outbound.isEmpty && !transport.hasPendingOutput {
            phase = .writeShut
            shutdownTransport()
        } else {
            phase = .shutdownAfterFlush
        }
    }

    /// Closes now, or, with `afterFlush`, gracefully: nothing more is
    /// queued, what is queued is written, then FIN and a lingering close
    /// (input is no longer delivered from here on).
    public func close(afterFlush: Bool) {
        guard afterFlush else { close(); return }
        switch phase {
        case .open, .shutdownAfterFlush, .writeShut:
            if outbound.isEmpty && !transport.hasPendingOutput {
                finishWriting()
            } else {
                phase = .closeAfterFlush
                updateInterest()
                scheduleFlush()
            }
        case .connecting, .handshaking:
            // Nothing was said yet that the peer could read.
            close()
        case .closeAfterFlush, .lingering, .closed:
            break
        }
    }

    /// Everything is written: FIN, then linger until the peer's FIN. For the
    /// handler the connection is closed from here on (it hears
    /// `connectionClosed` now); the lingering is the transport's business.
    private func finishWriting() {
        if readEOF {
            close()
            return
        }
        if phase != .writeShut { shutdownTransport() }
        phase = .lingering
        updateInterest()
        releaseHandler(error: nil)
        lingerTimer = loop.schedule(afterNanoseconds: lingerTimeout) { [unowned self] in
            lingerTimer = nil
            close()
        }
    }

    /// FIN (for TLS: close_notify, then FIN once it is sent).
    private func shutdownTransport() {
        transport.shutdownWrite()
        if transport.hasPendingOutput {
            switch transport.flushPending() {
            case .wouldBlock:
                if !awaitingWritable {
                    awaitingWritable = true
                    updateInterest()
                }
            case .bytes, .eof, .error:
                // An error shows on the next read (or the linger ends it).
                break
            }
        }
    }

    /// Closes now: queued bytes are dropped; the handler hears `connectionClosed`.
    public func close(error: SystemError? = nil) {
        guard phase != .closed else { return }
        phase = .closed
        lingerTimer?.cancel()
        lingerTimer = nil
        // The fd table held the owning reference: keep self alive until done.
        let owner = loop.deregister(fd: fd)
        withExtendedLifetime(owner) {
            transport.close()
            outbound.removeAll()
            releaseHandler(error: error)
        }
    }

    private func releaseHandler(error: SystemError?) {
        let h = handler
        handler = nil
        h?.connectionClosed(self, error: error)
    }

    public func loopWillClose() { close() }

    /// Hands the stream over: the connection leaves this loop without
    /// closing its transport, which the caller adopts on another loop
    /// (`adopt(transport:on:)`). Only while open with nothing queued; nil
    /// otherwise. The handler is dropped without a `connectionClosed`.
    public func detach() -> (any Transport)? {
        guard phase == .open, outbound.isEmpty, !transport.hasPendingOutput else { return nil }
        phase = .closed
        loop.deregister(fd: fd)
        handler = nil
        return transport
    }
}
