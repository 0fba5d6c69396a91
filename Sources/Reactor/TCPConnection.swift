import Glibc
import CReactor

/// A nonblocking stream socket on one loop, with a bounded outbound queue
/// flushed once per loop turn (cork) and one read per readiness event.
///
/// Ownership: the loop's fd table holds the one strong reference while the
/// connection is open; the connection holds its handler strongly until it
/// closes (the handler should refer back with `unowned`).
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
    private enum State { case connecting, open, closed }
    private var state: State
    private var interest: UInt32 = 0
    private var flushScheduled = false
    private var awaitingWritable = false
    private var readPaused = false
    public private(set) var readEOF = false
    private var closeAfterFlush = false
    private var shutdownAfterFlush = false
    private var notifyOnDrain = false

    /// Largest single read (bytes), so one busy peer cannot take a whole slab.
    public static let maxRead = 64 * 1024

    private init(loop: EventLoop, transport: any Transport, connecting: Bool, outboundLimit: Int) {
        self.loop = loop
        self.transport = transport
        fd = transport.fd
        outbound = OutboundQueue(limit: outboundLimit)
        state = connecting ? .connecting : .open
    }

    /// Adopts an accepted (or otherwise connected) nonblocking socket.
    public static func adopt(fd: Int32, on loop: EventLoop, outboundLimit: Int = 1 << 20) throws(SystemError) -> TCPConnection {
        let c = TCPConnection(loop: loop, transport: PlainTransport(fd: fd), connecting: false, outboundLimit: outboundLimit)
        c.interest = CREACTOR_EPOLLIN | CREACTOR_EPOLLRDHUP
        try loop.register(fd: fd, events: c.interest, handler: c)
        return c
    }

    /// Starts connecting; the handler hears `connectionConnected` or `connectionClosed(error:)`.
    public static func connect(
        to address: SocketAddress, from source: SocketAddress? = nil, on loop: EventLoop,
        handler: any ConnectionHandler, outboundLimit: Int = 1 << 20, configure: ((Int32) -> Void)? = nil
    ) throws -> TCPConnection {
        let fd = try Socket.connect(to: address, from: source, configure: configure)
        Socket.setNoDelay(fd)
        let c = TCPConnection(loop: loop, transport: PlainTransport(fd: fd), connecting: true, outboundLimit: outboundLimit)
        c.handler = handler
        c.interest = CREACTOR_EPOLLOUT
        do {
            try loop.register(fd: fd, events: c.interest, handler: c)
        } catch {
            Glibc.close(fd)
            throw error
        }
        return c
    }

    public var isOpen: Bool { state != .closed }
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
    /// `coalesce`: see `OutboundQueue.enqueue`.
    @discardableResult
    public func enqueue(_ slice: SlabSlice, force: Bool = false, coalesce: Bool = false) -> Bool {
        guard state != .closed && !closeAfterFlush && !shutdownAfterFlush else { return false }
        guard outbound.enqueue(slice, force: force, coalesce: coalesce) else {
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
    public func notifyWhenDrained() {
        notifyOnDrain = true
        if outbound.isEmpty && state == .open {
            loop.runLater { [self] in
                if notifyOnDrain && outbound.isEmpty && state == .open {
                    notifyOnDrain = false
                    handler?.connectionDrained(self)
                }
            }
        }
    }

    /// Drops queued entries for which `drop` is true, never one partly
    /// written (a frame is never cut). Returns how many were dropped.
    public func dropQueued(where drop: (SlabSlice) -> Bool) -> Int {
        outbound.removeAll(where: drop)
    }

    public func flushQueued() {
        flushScheduled = false
        guard state == .open, !awaitingWritable else { return }
        flush()
    }

    private func flush() {
        let result = outbound.flush(iovecs: loop.iovecs) { iov, n in transport.writev(iov, count: n) }
        switch result {
        case .drained:
            if awaitingWritable {
                awaitingWritable = false
                updateInterest()
            }
            if closeAfterFlush {
                close()
            } else {
                if shutdownAfterFlush {
                    shutdownAfterFlush = false
                    transport.shutdownWrite()
                }
                if notifyOnDrain {
                    notifyOnDrain = false
                    handler?.connectionDrained(self)
                }
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
    }

    public var isReadingPaused: Bool { readPaused }

    private func readOnce() {
        let slab = loop.readBuffer.prepare()
        let start = slab.base + slab.used
        let room = min(slab.capacity - slab.used, Self.maxRead)
        switch transport.read(into: UnsafeMutableRawBufferPointer(start: start, count: room)) {
        case .bytes(let n):
            slab.used += n
            handler?.connectionRead(self, SlabSlice(slab: Unmanaged.passUnretained(slab), start: UnsafeRawPointer(start), count: n))
        case .wouldBlock:
            break
        case .eof:
            readEOF = true
            updateInterest()
            handler?.connectionReadEOF(self)
        case .error(let e):
            close(error: e)
        }
    }

    // MARK: Events

    public func handleEvents(_ events: UInt32) {
        if state == .connecting {
            let e = Socket.pendingError(fd)
            if e != 0 {
                close(error: SystemError("connect", code: e))
                return
            }
            state = .open
            updateInterest()
            handler?.connectionConnected(self)
            return
        }
        if events & CREACTOR_EPOLLOUT != 0 && awaitingWritable {
            awaitingWritable = false
            flush()
            if !awaitingWritable { updateInterest() }
        }
        guard state == .open else { return }
        if events & (CREACTOR_EPOLLIN | CREACTOR_EPOLLRDHUP | CREACTOR_EPOLLHUP | CREACTOR_EPOLLERR) != 0 && !readPaused && !readEOF {
            readOnce()
        } else if events & CREACTOR_EPOLLERR != 0 {
            close(error: SystemError("socket", code: Socket.pendingError(fd)))
        } else if events & CREACTOR_EPOLLHUP != 0 {
            // Both directions are gone and we are not reading: nothing left to do.
            close()
        }
    }

    private func updateInterest() {
        guard state != .closed else { return }
        var wanted: UInt32 = 0
        if state == .connecting {
            wanted = CREACTOR_EPOLLOUT
        } else {
            if !readPaused && !readEOF && !closeAfterFlush { wanted |= CREACTOR_EPOLLIN | CREACTOR_EPOLLRDHUP }
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
        guard state == .open else { return }
        if outbound.isEmpty { transport.shutdownWrite() } else { shutdownAfterFlush = true }
    }

    /// Closes now, or, with `afterFlush`, once everything queued is written
    /// (reading stops at once).
    public func close(afterFlush: Bool) {
        guard state != .closed else { return }
        if afterFlush && !outbound.isEmpty && state == .open {
            closeAfterFlush = true
            updateInterest()
            if !flushScheduled && !awaitingWritable {
                flushScheduled = true
                loop.scheduleFlush(self)
            }
        } else {
            close()
        }
    }

    /// Closes now: queued bytes are dropped; the handler hears `connectionClosed`.
    public func close(error: SystemError? = nil) {
        guard state != .closed else { return }
        state = .closed
        // The fd table held the owning reference: keep self alive until done.
        let owner = loop.deregister(fd: fd)
        withExtendedLifetime(owner) {
            transport.close()
            outbound.removeAll()
            let h = handler
            handler = nil
            h?.connectionClosed(self, error: error)
        }
    }

    public func loopWillClose() { close() }

    /// Hands the socket over: the connection leaves this loop without
    /// closing its descriptor, which the caller adopts on another loop
    /// (`adopt(fd:on:)`). Only before anything is queued; nil otherwise.
    /// The handler is dropped without a `connectionClosed`.
    public func detach() -> Int32? {
        guard state == .open, outbound.isEmpty, !closeAfterFlush else { return nil }
        state = .closed
        loop.deregister(fd: fd)
        handler = nil
        return fd
    }
}
