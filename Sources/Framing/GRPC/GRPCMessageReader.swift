/// Reassembles gRPC length-prefixed messages (a 1-byte compressed flag, a
/// 4-byte big-endian length, the message) from a stream's DATA, however the
/// peer split them across frames. Sans-I/O: bytes in, messages out.
///
/// The bound: a message longer than `maxMessageSize` is refused from its
/// prefix, before any of it is buffered (RESOURCE_EXHAUSTED). A message
/// that arrives whole inside one input is handed out in place; only one
/// split across inputs is copied, into a buffer of at most its size.
public struct GRPCMessageReader: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        /// Longer than the limit (the length from its prefix).
        case tooLarge(Int)
        /// The compressed flag set: we offered no grpc-encoding.
        case compressed
    }

    public let maxMessageSize: Int
    private var prefix: [UInt8] = []
    private var message: [UInt8] = []
    private var expected = -1       // -1: reading a prefix
    /// The first failure; the reader takes nothing more after it.
    public private(set) var failure: Failure?

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// No partial message is buffered (a clean end of stream).
    public var isIdle: Bool { prefix.isEmpty && expected < 0 }

    /// Feeds DATA bytes; `deliver` gets each complete message (valid during
    /// the call). Stops at the first failure.
    public mutating func receive(_ input: UnsafeRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void) -> Failure? {
        if let failure { return failure }
        var i = 0
        while i < input.count {
            if expected < 0 {
                // Fast path: a whole prefix here.
                if prefix.isEmpty && input.count - i >= 5 {
                    if let f = start(input[i], input[i + 1], input[i + 2], input[i + 3], input[i + 4]) { return f }
                    i += 5
                } else {
                    prefix.append(input[i])
                    i += 1
                    if prefix.count == 5 {
                        if let f = start(prefix[0], prefix[1], prefix[2], prefix[3], prefix[4]) { return f }
                        prefix.removeAll(keepingCapacity: true)
                    }
                    continue
                }
            }
            let available = input.count - i
            if message.isEmpty && available >= expected {
                deliver(UnsafeRawBufferPointer(rebasing: input[i..<(i + expected)]))
                i += expected
                expected = -1
                continue
            }
            let take = min(available, expected - message.count)
            message.append(contentsOf: input[i..<(i + take)])
            i += take
            if message.count == expected {
                message.withUnsafeBytes { deliver($0) }
                message.removeAll(keepingCapacity: false)
                expected = -1
            }
        }
        // A zero-length message right at the end of the input.
        if expected == 0 {
            deliver(UnsafeRawBufferPointer(start: nil, count: 0))
            expected = -1
        }
        return nil
    }

    private mutating func start(_ flag: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8) -> Failure? {
        if flag != 0 {
            failure = .compressed
            prefix = []
            return failure
        }
        let n = Int(b1) << 24 | Int(b2) << 16 | Int(b3) << 8 | Int(b4)
        if n > maxMessageSize {
            failure = .tooLarge(n)
            prefix = []
            return failure
        }
        expected = n
        return nil
    }
}
