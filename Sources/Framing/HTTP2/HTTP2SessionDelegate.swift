/// What a DATA source has for nghttp2 when it asks (`dataReady`).
public enum HTTP2DataReady: Sendable, Equatable {
    /// Nothing now: the stream waits until `HTTP2Session.resumeData`.
    case deferred
    /// `count` bytes (at most the `max` asked for) are ready; `end`: they
    /// are the last, and then END_STREAM goes with them (or, with
    /// `trailers`, with the trailers submitted during this call).
    case bytes(Int, end: Bool, trailers: Bool)
}

/// Events out of an `HTTP2Session` and the bytes it wants sent. Calls come
/// during `receive` or `send`, on the caller's thread.
public protocol HTTP2SessionDelegate: AnyObject {
    /// A complete header block (request headers or trailers) on `stream`.
    /// `tooLarge`: it passed `maxHeaderListSize` (the headers kept are a prefix).
    func http2(_ s: HTTP2Session, headers: [HTTP2Header], stream: Int32, endStream: Bool, tooLarge: Bool)
    /// DATA payload of `stream`, valid during the call. The caller must
    /// `consume` it (now, or later to hold the peer back).
    func http2(_ s: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32)
    /// The peer ended its side of `stream` (END_STREAM on DATA).
    func http2(_ s: HTTP2Session, endOfStream stream: Int32)
    /// `stream` is closed (RST_STREAM either way, or both sides ended).
    func http2(_ s: HTTP2Session, closed stream: Int32, errorCode: UInt32)
    /// An acknowledgement of our PING arrived.
    func http2PingAcknowledged(_ s: HTTP2Session)
    /// The peer sent GOAWAY: streams above `lastStream` were not processed.
    func http2(_ s: HTTP2Session, goAway errorCode: UInt32, lastStream: Int32)
    /// Frame bytes (not DATA payload) to send, valid during the call.
    /// False: none taken now (the socket is full); nghttp2 offers them again.
    func http2(_ s: HTTP2Session, output bytes: UnsafeRawBufferPointer) -> Bool
    /// How much DATA `stream` has, up to `max` bytes.
    func http2(_ s: HTTP2Session, dataReady stream: Int32, max: Int) -> HTTP2DataReady
    /// The same, with the `source` the stream's response or request was
    /// submitted with (no lookup by stream id on the hot path).
    func http2(_ s: HTTP2Session, dataReady stream: Int32, source: UnsafeMutableRawPointer?, max: Int) -> HTTP2DataReady
    /// `sendData` with the stream's `source`.
    func http2(_ s: HTTP2Session, sendData stream: Int32, source: UnsafeMutableRawPointer?,
               frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool
    /// Send one DATA frame: `frameHeader` (9 bytes, valid during the call)
    /// then the stream's next `length` bytes. False: not now (socket full).
    func http2(_ s: HTTP2Session, sendData stream: Int32, frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool
}

extension HTTP2SessionDelegate {
    public func http2(_ s: HTTP2Session, endOfStream stream: Int32) {}
    public func http2PingAcknowledged(_ s: HTTP2Session) {}
    public func http2(_ s: HTTP2Session, dataReady stream: Int32, source: UnsafeMutableRawPointer?, max: Int) -> HTTP2DataReady {
        http2(s, dataReady: stream, max: max)
    }
    public func http2(_ s: HTTP2Session, sendData stream: Int32, source: UnsafeMutableRawPointer?,
                      frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        http2(s, sendData: stream, frameHeader: frameHeader, length: length)
    }
    public func http2(_ s: HTTP2Session, goAway errorCode: UInt32, lastStream: Int32) {}
}
