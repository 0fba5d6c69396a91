/// A parsed HTTP/1.x request line plus header fields.
public struct HTTPRequestHead: Sendable {
    public var method: String
    /// The request-target exactly as received.
    public var target: String
    /// Percent-decoded path ("*" for asterisk-form).
    public var path: String
    /// Decoded query parameters in order ('+' decoded as space).
    public var query: [(name: String, value: String)]
    /// The x in HTTP/1.x (0 or 1).
    public var versionMinor: Int
    public var headers: HTTPHeaders

    public init(method: String, target: String, path: String,
                query: [(name: String, value: String)], versionMinor: Int, headers: HTTPHeaders) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.versionMinor = versionMinor
        self.headers = headers
    }

    /// The first query value with this (case-sensitive) name.
    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }
}

/// Why a request head was refused, with the status code to answer with.
public struct HTTPHeadError: Error, Equatable, Sendable {
    public let status: Int
    public let reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }
}

public enum HTTPHeadParseResult: Sendable {
    case needMore
    /// `headLength` counts bytes up to and including the blank line's CRLF.
    case complete(HTTPRequestHead, headLength: Int)
    case failed(HTTPHeadError)
}

public struct HTTPRequestHeadLimits: Sendable {
    public var maxHeadSize = 16384
    public var maxHeaders = 100
    public var maxTargetLength = 8192

    public init() {}
}
