import Glibc

/// An IPv4 or IPv6 address with a port, parsed from numeric text (no DNS:
/// "localhost" is the one name understood).
public struct SocketAddress: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    private var storage = sockaddr_storage()
    public private(set) var length: socklen_t = 0

    public init(host: String, port: Int) throws(SocketError) {
        guard (0...65535).contains(port) else {
            throw SocketError("port \(port) is out of range (0-65535)", code: EINVAL)
        }
        self.host = host
        self.port = port
        let name = host == "localhost" ? "127.0.0.1" : host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET, name, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &storage) { dst in
                withUnsafeBytes(of: v4) { dst.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if inet_pton(AF_INET6, name, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &storage) { dst in
                withUnsafeBytes(of: v6) { dst.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            throw SocketError("'\(host)' is not a numeric IPv4 or IPv6 address", code: EINVAL)
        }
    }

    public var family: Int32 { Int32(storage.ss_family) }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}
