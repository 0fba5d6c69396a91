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

    public init(sendBufferSize: Int? = nil) {
        fd = creactor_epoll_create()
        precondition(fd >= 0, "epoll_create1 failed")
        self.sendBufferSize = sendBufferSize
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
    public var pendingInbound: Int { inbound.count - inboundOffset }

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

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if reset { return .error(SystemError("read", code: ECONNRESET)) }
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
        if writeShutdown { return .error(SystemError("writev", code: EPIPE)) }
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

    public func shutdownWrite() { writeShutdown = true }

    public func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
        isClosed = true
    }
}
