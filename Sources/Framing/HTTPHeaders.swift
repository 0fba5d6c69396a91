/// Header fields of an HTTP message, in the order received.
/// Names keep their original spelling; lookups are ASCII case-insensitive.
public struct HTTPHeaders: Sendable {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}

    public var count: Int { fields.count }

    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// The first value with this name.
    public subscript(_ name: String) -> String? {
        fields.first { ASCII.equalsIgnoringCase($0.name, name) }?.value
    }

    /// Every value with this name, in order.
    public func values(_ name: String) -> [String] {
        fields.compactMap { ASCII.equalsIgnoringCase($0.name, name) ? $0.value : nil }
    }

    /// True when `token` appears in the comma-separated lists of any instance
    /// of header `name` (e.g. `Connection: keep-alive, Upgrade`).
    public func containsToken(_ name: String, _ token: String) -> Bool {
        for value in values(name) {
            for element in value.split(separator: ",", omittingEmptySubsequences: true)
            where ASCII.equalsIgnoringCase(String(ASCII.trimmingOWS(element)), token) {
                return true
            }
        }
        return false
    }
}
