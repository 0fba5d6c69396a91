/// One header field of an HTTP/2 header block (names are lowercase on the
/// wire; pseudo-headers start with ':').
public struct HTTP2Header: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name): \(value)" }
}

extension Array where Element == HTTP2Header {
    /// The first value for `name` (exact, lowercase).
    public func value(_ name: String) -> String? {
        first { $0.name == name }?.value
    }
}
