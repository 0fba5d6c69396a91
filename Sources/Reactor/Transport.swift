import Glibc

/// The seam between a connection and its byte stream, so that TLS slots in
/// under the protocol code without touching it.
public protocol Transport: AnyObject {
    /// The descriptor the loop polls.
    var fd: Int32 { get }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    func writev(_ iov: UnsafePointer<iovec>, count: Int32) -> IOResult
    /// Half-close: no more bytes will be sent (TCP FIN).
    func shutdownWrite()
    func close()
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
