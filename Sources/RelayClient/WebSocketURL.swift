import Reactor

/// `ws://host:port/path?query` or `wss://…` (TLS); no DNS: numeric hosts
/// and "localhost".
public struct WebSocketURL: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// Path and query, e.g. "/runner/relay?token=…".
    public let target: String
    /// wss:// (or https://): the connection needs TLS.
    public let secure: Bool

    public init(host: String, port: Int, target: String, secure: Bool = false) {
        self.host = host
        self.port = port
        self.target = target
        self.secure = secure
    }

    public init?(_ text: String) {
        var rest = Substring(text)
        if rest.hasPrefix("ws://") { rest = rest.dropFirst(5); secure = false }
        else if rest.hasPrefix("http://") { rest = rest.dropFirst(7); secure = false }
        else if rest.hasPrefix("wss://") { rest = rest.dropFirst(6); secure = true }
        else if rest.hasPrefix("https://") { rest = rest.dropFirst(8); secure = true }
        else { return nil }
        let defaultPort = secure ? 443 : 80
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        target = slash == rest.endIndex ? "/" : String(rest[slash...])
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : defaultPort
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = Int(authority[authority.index(after: colon)...]) ?? -1
        } else {
            host = String(authority)
            port = defaultPort
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }

    /// The same server with another path and query.
    public func with(target: String) -> WebSocketURL { WebSocketURL(host: host, port: port, target: target, secure: secure) }

    /// The same server, over TLS.
    public func withTLS() -> WebSocketURL { WebSocketURL(host: host, port: port, target: target, secure: true) }

    public var description: String { "\(secure ? "wss" : "ws")://\(host.contains(":") ? "[\(host)]" : host):\(port)\(target)" }

    public func address() throws -> SocketAddress { try SocketAddress(host: host, port: port) }
}
