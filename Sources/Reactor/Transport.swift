import Glibc

/// One step of a transport's own handshake (TLS); plain TCP has none.
public enum HandshakeStep: Equatable, Sendable {
    case done
    /// Call again once the descriptor is readable.
    case wantRead
    /// Call again once the descriptor is writable.
    case wantWrite
    case failed(SystemError)
}

/// What a transport negotiated, for log lines and metrics (all nil for
/// plain TCP).
public struct TransportSummary: Equatable, Sendable {
    /// "TLSv1.3", "TLSv1.2".
    public var protocolVersion: String?
    /// The ALPN protocol agreed ("http/1.1", "h2").
    public var applicationProtocol: String?
    /// The client certificate's subject, when one was presented and verified.
    public var peerSubject: String?
    /// The session was resumed (TLS session ticket or cache).
    public var resumed = false

    public init(protocolVersion: String? = nil, applicationProtocol: String? = nil, peerSubject: String? = nil, resumed: Bool = false) {
        self.protocolVersion = protocolVersion
        self.applicationProtocol = applicationProtocol
        self.peerSubject = peerSubject
        self.resumed = resumed
    }

    public var isSecure: Bool { protocolVersion != nil }
}

/// The seam between a connection and its byte stream: `TCPConnection` and
/// everything above it work unchanged over plain TCP, TLS or memory.
///
/// A transport may hold bytes of its own in either direction, which epoll
/// cannot see: input already read from the socket and decoded but not yet
/// returned (`hasBufferedInput`: TLS records read ahead), and output that
/// the socket refused (`hasPendingOutput`: encrypted records, a
/// close_notify). The connection reads again while there is buffered input
/// and calls `flushPending` until there is no pending output.
///
/// A transport is used by one loop thread at a time; it may move to another
/// loop with its connection (`TCPConnection.detach`), whole.
public protocol Transport: AnyObject {
    /// The descriptor the loop polls.
    var fd: Int32 { get }
    /// False until the transport's handshake has completed.
    var isHandshakeComplete: Bool { get }
    /// Drives the handshake one step (nonblocking).
    func handshake() -> HandshakeStep
    var summary: TransportSummary { get }
    /// Application bytes that `read` can return without the descriptor
    /// becoming readable.
    var hasBufferedInput: Bool { get }
    /// Bytes the transport must still send before anything queued later.
    var hasPendingOutput: Bool { get }
    /// Sends pending output: `.bytes(0)` once none is left, `.wouldBlock`
    /// when the socket is full.
    func flushPending() -> IOResult
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    /// Writes (or, for TLS, encrypts and takes) a prefix of the slices;
    /// `.bytes(n)` counts the caller's bytes taken.
    func writev(_ iov: UnsafePointer<iovec>, count: Int32) -> IOResult
    /// Half-close: no more bytes will be sent (TCP FIN; for TLS a
    /// close_notify first, which may stay pending).
    func shutdownWrite()
    func close()
}

extension Transport {
    public var isHandshakeComplete: Bool { true }
    public func handshake() -> HandshakeStep { .done }
    public var summary: TransportSummary { TransportSummary() }
    public var hasBufferedInput: Bool { false }
    public var hasPendingOutput: Bool { false }
    public func flushPending() -> IOResult { .bytes(0) }
}

/// A plain TCP socket.
public final class PlainTransport: Transport {
    public private(set) var fd: Int32

    public init(fd: Int32) { self.fd = fd }

    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .eof }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(SystemError("read", code: e))
        }
    }

    @inline(__always)
    public func writev(_ iov: UnsafePointer<iovec>, count: Int32) -> IOResult {
        while true {
            let n = Glibc.writev(fd, iov, count)
            if n >= 0 { return .bytes(n) }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(SystemError("writev", code: e))
        }
    }

    public func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    public func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }
}
