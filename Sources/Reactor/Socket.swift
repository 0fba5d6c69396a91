import Glibc
import CReactor

/// Thin wrappers over socket system calls, one per call, each with an
/// explicit error (in the manner of Redis's anet.c).
public enum Socket {
    /// A nonblocking listening socket. With `reusePort` several sockets (one
    /// per loop) share the port and the kernel spreads connections.
    public static func listen(_ address: SocketAddress, reusePort: Bool, backlog: Int32 = 1024) throws(SocketError) -> Int32 {
        let fd = creactor_socket_nonblocking(address.family, Int32(SOCK_STREAM.rawValue))
        if fd < 0 { throw SocketError("socket: \(String(cString: strerror(errno)))", code: errno) }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if reusePort { setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
        if address.family == AF_INET6 { setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        let rc = address.withSockAddr { bind(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            close(fd)
            throw bindError(address, e)
        }
        if Glibc.listen(fd, backlog) != 0 {
            let e = errno
            close(fd)
            if e == EADDRINUSE { throw bindError(address, e) }
            throw SocketError("listen on \(address): \(String(cString: strerror(e)))", code: e)
        }
        return fd
    }

    /// Fails with "port N is already in use" if anything (including another
    /// process's SO_REUSEPORT group, which would otherwise silently share the
    /// port with us) listens on `address`.
    public static func checkPortFree(_ address: SocketAddress) throws(SocketError) {
        let fd = creactor_socket_nonblocking(address.family, Int32(SOCK_STREAM.rawValue))
        if fd < 0 { throw SocketError("socket: \(String(cString: strerror(errno)))", code: errno) }
        defer { close(fd) }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if address.family == AF_INET6 { setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        if address.withSockAddr({ bind(fd, $0, $1) }) != 0 { throw bindError(address, errno) }
    }

    private static func bindError(_ address: SocketAddress, _ e: Int32) -> SocketError {
        switch e {
        case EADDRINUSE: return SocketError("port \(address.port) is already in use (\(address))", code: e)
        case EACCES: return SocketError("permission denied to listen on port \(address.port) (\(address))", code: e)
        case EADDRNOTAVAIL: return SocketError("address \(address.host) is not available on this machine", code: e)
        default: return SocketError("bind \(address): \(String(cString: strerror(e)))", code: e)
        }
    }

    /// Starts a nonblocking connect; the socket becomes writable when it
    /// completes (then check `pendingError`). `source` binds the local address
    /// first (e.g. 127.0.0.x to spread ephemeral ports).
    /// `configure` runs on the socket before anything else (buffer sizes,
    /// segment size: options that must precede the handshake).
    public static func connect(
        to address: SocketAddress, from source: SocketAddress? = nil, configure: ((Int32) -> Void)? = nil
    ) throws(SocketError) -> Int32 {
        let fd = creactor_socket_nonblocking(address.family, Int32(SOCK_STREAM.rawValue))
        if fd < 0 { throw SocketError("socket: \(String(cString: strerror(errno)))", code: errno) }
        configure?(fd)
        if let source {
            setOption(fd, Int32(IPPROTO_IP), IP_BIND_ADDRESS_NO_PORT, 1)
            if source.withSockAddr({ bind(fd, $0, $1) }) != 0 {
                let e = errno
                close(fd)
                throw SocketError("bind \(source): \(String(cString: strerror(e)))", code: e)
            }
        }
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            let e = errno
            close(fd)
            throw SocketError("connect \(address): \(String(cString: strerror(e)))", code: e)
        }
        return fd
    }

    /// SO_ERROR: the result of a nonblocking connect (0 = connected).
    public static func pendingError(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len)
        return value
    }

    public static func setNoDelay(_ fd: Int32) {
        setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    /// Kernel buffer sizes (the kernel doubles and clamps these).
    public static func setBufferSizes(_ fd: Int32, send: Int32, receive: Int32) {
        setOption(fd, SOL_SOCKET, SO_SNDBUF, send)
        setOption(fd, SOL_SOCKET, SO_RCVBUF, receive)
    }

    /// Caps the TCP segment size (before connect). Tests use it with tiny
    /// socket buffers: on loopback the MSS is ~64 KiB, and a receive window
    /// smaller than one segment stalls on the 200 ms persist timer.
    public static func setMaxSegment(_ fd: Int32, _ bytes: Int32) {
        setOption(fd, Int32(IPPROTO_TCP), TCP_MAXSEG, bytes)
    }

    /// The local port a socket is bound to.
    public static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let raw: UInt16 = withUnsafeBytes(of: storage) { bytes in
            // sin_port and sin6_port sit at the same offset (2).
            bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        }
        return Int(UInt16(bigEndian: raw))
    }

    @inline(__always)
    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }
}
