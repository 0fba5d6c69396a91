/// How a `WebSocketDecoder` judges incoming frames.
public struct WebSocketDecoderConfiguration: Sendable {
    /// True on a server: client frames MUST be masked. False on a client:
    /// server frames MUST NOT be masked (RFC 6455 §5.1).
    public var expectMasked: Bool
    /// Largest message (sum of its fragments' payloads) accepted; larger ones
    /// fail with close code 1009.
    public var maxMessageSize: Int
    /// permessage-deflate was negotiated (RFC 7692): RSV1 on a message's
    /// first frame marks it compressed, and `feed` is given the codec that
    /// inflates it. The limit applies to the inflated size.
    public var compressed: Bool

    public init(expectMasked: Bool = true, maxMessageSize: Int = 4 << 20, compressed: Bool = false) {
        precondition(maxMessageSize >= 0, "maxMessageSize must not be negative")
        self.expectMasked = expectMasked
        self.maxMessageSize = maxMessageSize
        self.compressed = compressed
    }
}
