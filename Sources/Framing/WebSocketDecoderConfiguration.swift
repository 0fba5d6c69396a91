/// How a `WebSocketDecoder` judges incoming frames.
public struct WebSocketDecoderConfiguration: Sendable {
    /// True on a server: client frames MUST be masked. False on a client:
    /// server frames MUST NOT be masked (RFC 6455 §5.1).
    public var expectMasked: Bool
    /// Largest message (sum of its fragments' payloads) accepted; larger ones
    /// fail with close code 1009.
    public var maxMessageSize: Int

    public init(expectMasked: Bool = true, maxMessageSize: Int = 4 << 20) {
        precondition(maxMessageSize >= 0, "maxMessageSize must not be negative")
        self.expectMasked = expectMasked
        self.maxMessageSize = maxMessageSize
    }
}
