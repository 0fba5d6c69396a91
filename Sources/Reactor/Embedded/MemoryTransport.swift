import Glibc
import CReactor

/// A byte stream held in memory, for tests: the connection's side is the
/// `Transport`; the test plays the peer with `peerWrite`, `peerRead`,
/// `peerShutdown` and `peerReset`. Readiness is not the kernel's but
/// `readiness`, which `EmbeddedEventLoop` delivers to the connection.
///
/// `fd` is an empty epoll instance: a real descriptor (so the loop's fd
/// table and epoll registration work unchanged) that never becomes ready.
/// Loop-thread only, like the connection that uses it.
///
/// It can also behave like a transport with state of its own (TLS), so that
/// the seam is tested without OpenSSL: a scripted handshake
/// (`handshakeScript`), input taken from the "kernel" in one go and then
/// returned `readChunk` bytes at a time without readiness
/// (`hasBufferedInput`), and output held until `flushPending`
/// (`holdsOutput`), with a one-byte "close_notify" before the FIN.
public final class MemoryTransport: Transport {
    public private(set) var fd: Int32
    private var inbound: [UInt8] = []
    private var inboundOffset = 0
    private var peerFinished = false
    private var reset = false
    /// What the connection wrote and the peer has not read yet.
    private var outbound: [UInt8] = []
    /// Like a socket's send buffer: at most this many unread bytes are
    /// accepted before writes would block (nil: unbounded).
    public var sendBufferSize: Int?
    /// The connection sent FIN.
    public private(set) var writeShutdown = false
    public private(set) var isClosed = false
    /// Every `writev` call, so tests can count them.
    public private(set) var writeCalls = 0

    /// Handshake steps still to come; the transport is complete once a
    /// `.done` has been returned (or when made without a script).
    public private(set) var handshakeScript: [HandshakeStep]
    public private(set) var isHandshakeComplete: Bool
    public private(set) var handshakeCalls = 0
    /// Most bytes one read returns; what is left of the input taken from
    /// the "kernel" stays buffered, without readiness (nil: all at once).
    public var readChunk: Int?
    private var buffered: [UInt8] = []
    /// Writes are taken at once but held until `flushPending` moves them
    /// to the peer (as far as `sendBufferSize` allows).
    public var holdsOutput = false
    private var held: [UInt8] = []
    private var finAfterHeld = false
    /// The byte `shutdownWrite` holds before the FIN when `holdsOutput`.
    public static let closeNotify: UInt8 = 0x15

    public init(sendBufferSize: Int? = nil, handshake script: [HandshakeStep] = []) {
        fd = creactor_epoll_create()
        precondition(fd >= 0, "epoll_create1 failed")
        self.sendBufferSize = sendBufferSize
        handshakeScript = script
        isHandshakeComplete = script.isEmpty
    }

    deinit { close() }

    // MARK: The peer's side

    public func peerWrite(_ bytes: [UInt8]) {
        precondition(!peerFinished, "peer wrote after its FIN")
        inbound += bytes
    }

    /// Takes everything the connection has written so far.
    public func peerRead() -> [UInt8] {
        defer { outbound.removeAll() }
        return outbound
    }

    /// Bytes the peer wrote that the connection has not read yet.
    public var pendingInbound: Int { inbound.count - inboundOffset + buffered.count }

    /// Unread bytes the connection wrote.
    public var pendingOutbound: Int { outbound.count }

    /// The peer sends FIN (after the bytes it wrote).
    public func peerShutdown() { peerFinished = true }

    /// The peer resets the connection: reads and writes fail from now on.
    public func peerReset() { reset = true }

    /// The epoll bits that would be ready on a socket in this state.
    public var readiness: UInt32 {
        if isClosed { return 0 }
        var ready: UInt32 = 0
        if inboundOffset < inbound.count || peerFinished || reset { ready |= CREACTOR_EPOLLIN }
        if peerFinished { ready |= CREACTOR_EPOLLRDHUP }
        if reset { ready |= CREACTOR_EPOLLERR | CREACTOR_EPOLLHUP }
        if !writeShutdown && (sendBufferSize.map { outbound.count < $0 } ?? true) { ready |= CREACTOR_EPOLLOUT }
        return ready
    }

    // MARK: Transport

    /// One scripted step; it consumes whatever the peer wrote (its
    /// handshake bytes).
    public func handshake() -> HandshakeStep {
        handshakeCalls += 1
        inbound.removeAll()
        inboundOffset = 0
        guard !handshakeScript.isEmpty else { return .done }
        let step = handshakeScript.removeFirst()
        if step == .done { isHandshakeComplete = true }
        return step
    }

    public var hasBufferedInput: Bool { !buffered.isEmpty }
    public var hasPendingOutput: Bool { !held.isEmpty || finAfterHeld }

    public func flushPending() -> IOResult {
        if reset { return .error(SystemError("send", code: ECONNRESET)) }
        let room = sendBufferSize.map { max($0 - outbound.count, 0) } ?? Int.max
        let n = min(room, held.count)
        outbound += held[..<n]
        held.removeFirst(n)
        if !held.isEmpty { return .wouldBlock }
        if finAfterHeld {
            finAfterHeld = false
            writeShutdown = true
        }
        return .bytes(0)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if reset { return .error(SystemError("read", code: ECONNRESET)) }
        if let chunk = readChunk {
            if buffered.isEmpty {
                buffered = Array(inbound[inboundOffset...])
                inbound.removeAll()
                inboundOffset = 0
            }
            if buffered.isEmpty { return peerFinished ? .eof : .wouldBlock }
            let n = min(chunk, buffer.count, buffered.count)
            buffered.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            buffered.removeFirst(n)
            return .bytes(n)
        }
        let available = inbound.count - inboundOffset
        if available == 0 { return peerFinished ? .eof : .wouldBlock }
        let n = min(available, buffer.count)
        inbound.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + inboundOffset, byteCount: n)
        }
        inboundOffset += n
        if inboundOffset == inbound.count {
            inbound.removeAll()
            inboundOffset = 0
        }
        return .bytes(n)
    }

    public func writev(_ iov: UnsafePointer<iovec>, count: Int32) -> IOResult {
        writeCalls += 1
        if reset { return .error(SystemError("writev", code: ECONNRESET)) }
        if writeShutdown || finAfterHeld { return .error(SystemError("writev", code: EPIPE)) }
        if holdsOutput {
            if !held.isEmpty { return .wouldBlock }
            for i in 0..<Int(count) { held += UnsafeRawBufferPointer(start: iov[i].iov_base, count: iov[i].iov_len) }
            _ = flushPending()
            return .bytes((0..<Int(count)).reduce(0) { $0 + iov[$1].iov_len })
        }
        var room = sendBufferSize.map { max($0 - outbound.count, 0) } ?? Int.max
        if room == 0 { return .wouldBlock }
        var written = 0
        for i in 0..<Int(count) where room > 0 {
            let n = min(iov[i].iov_len, room)
            outbound += UnsafeRawBufferPointer(start: iov[i].iov_base, count: n)
            written += n
            room -= n
        }
        return .bytes(written)
    }

    public func shutdownWrite() {
        guard holdsOutput else { writeShutdown = true; return }
        held.append(Self.closeNotify)
        finAfterHeld = true
        _ = flushPending()
    }

    public func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
        isClosed = true
    }
}
