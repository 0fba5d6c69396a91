/// What one HTTP/2 session advertises and enforces (docs/protocol.md §1.2).
public struct HTTP2Settings: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a peer may have open at once.
    public var maxConcurrentStreams: UInt32 = 128
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many bytes a peer may send on one
    /// stream before we consume them (the bound of a paused stream's input).
    public var streamWindow: UInt32 = 1 << 20
    /// The connection's receive window (a WINDOW_UPDATE on stream 0 at start).
    /// Consumed as soon as bytes arrive: a paused stream never closes it.
    public var connectionWindow: UInt32 = 16 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE; a larger request is answered 431.
    public var maxHeaderListSize: UInt32 = 16 << 10
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): extended CONNECT.
    public var enableConnectProtocol = true
    /// CONTINUATION frames allowed after one HEADERS (CVE-2024-28182).
    public var maxContinuations = 8
    /// Streams the peer may reset (RST_STREAM) in a burst, and how many per
    /// second refill it; past it: GOAWAY ENHANCE_YOUR_CALM (CVE-2023-44487).
    public var resetBurst = 200
    public var resetsPerSecond = 100
    /// Frames that cost us work but carry nothing (SETTINGS, PING, empty
    /// DATA, PRIORITY) in a burst, and per second; past it: GOAWAY
    /// ENHANCE_YOUR_CALM. WINDOW_UPDATE is not counted: a reader of a busy
    /// stream legitimately sends one per DATA frame it consumes.
    public var controlBurst = 1000
    public var controlFramesPerSecond = 200
    /// Acknowledgements (SETTINGS, PING) nghttp2 queues for a peer that does
    /// not read them before it gives up on the peer.
    public var maxOutboundAcks = 1000

    public init() {}
}
