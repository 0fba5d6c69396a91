import Glibc

/// A failed system call: which call, and the errno it left; or a failure
/// of a transport's own protocol (TLS), with the library's reason as
/// `detail` ("wrong version number").
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let operation: String
    public let code: Int32
    public let detail: String?

    public init(_ operation: String, code: Int32 = errno, detail: String? = nil) {
        self.operation = operation
        self.code = code
        self.detail = detail
    }

    public var description: String {
        if let detail { return "\(operation): \(detail)" }
        return "\(operation): \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// A socket set-up failure, worded for the person who started the process.
public struct SocketError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public let code: Int32

    public init(_ message: String, code: Int32) {
        self.message = message
        self.code = code
    }

    public var description: String { message }
}
