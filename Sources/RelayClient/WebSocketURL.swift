import Reactor

/// `ws://host:port/path?query` (no TLS yet, no DNS: numeric hosts and
/// "localhost").
public struct WebSocketURL: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// Path and query, e.g. "/runner/relay?token=…".
    public let target: String

    public init(host: String, port: Int, target: String) {
        self.host = host
        self.port = port
        self.target = target
    }

    public init?(_ text: String) {
        var rest = Substring(text)
        if rest.hasPrefix("ws://") { rest = rest.dropFirst(5) }
        else if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        else { return nil }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        target = slash == rest.endIndex ? "/" : String(rest[slash...])
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : 80
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = Int(authority[authority.index(after: colon)...]) ?? -1
        } else {
            host = String(authority)
            port = 80
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }

    /// The same server with another path and query.
    public func with(target: String) -> WebSocketURL { WebSocketURL(host: host, port: port, target: target) }

    public var description: String { "ws://\(host.contains(":") ? "[\(host)]" : host):\(port)\(target)" }

    public func address() throws -> SocketAddress { try SocketAddress(host: host, port: port) }
}
