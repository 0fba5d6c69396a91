import CNghttp2

/// One HTTP/2 connection's protocol state, with no I/O: nghttp2's session
/// (RFC 9113 framing, HPACK, stream states, flow control) behind a small
/// interface. Bytes go in through `receive`; events and the bytes to send
/// come out through the delegate during `receive` and `send`.
///
/// DATA never passes through nghttp2's buffers: every DATA source is
/// `NGHTTP2_DATA_FLAG_NO_COPY`, so nghttp2 decides sizes and windows and
/// hands the delegate the 9-byte frame header, and the delegate queues its
/// own bytes after it (by reference, for the relay's shared frames).
///
/// Inbound flow control is the caller's: the stream window is given back
/// only when the caller `consume`s what it was handed (so a stream that is
/// not read holds its peer back at `streamWindow` bytes); the connection
/// window is given back as bytes arrive, so one held stream never stalls
/// the others.
///
/// Bounds beyond nghttp2's own (CONTINUATION count, queued acks): a token
/// bucket for peer resets (CVE-2023-44487) and one for frames that carry
/// nothing; past either, GOAWAY ENHANCE_YOUR_CALM and `failure` is set.
/// Header lists past `maxHeaderListSize` are reported `tooLarge`.
///
/// Not thread-safe: one owner (a connection on its loop).
public final class HTTP2Session {
    public enum Role: Sendable { case server, client }

    public let role: Role
    public let settings: HTTP2Settings
    /// The delegate owns this session (it is its connection's); never dangles.
    public unowned(unsafe) let delegate: any HTTP2SessionDelegate
    /// Why the session ended from our side (a bound, or bytes nghttp2
    /// refused); a GOAWAY saying so is queued. Nil while it is healthy.
    @exclusivity(unchecked) public private(set) var failure: String?

    private var session: OpaquePointer?
    @exclusivity(unchecked) private var resets: TokenBucket
    @exclusivity(unchecked) private var controlFrames: TokenBucket
    @exclusivity(unchecked) private var now: UInt64 = 0
    /// The header block being received. One at a time: a HEADERS frame's
    /// CONTINUATIONs follow it with no other frame between (RFC 9113 §6.10).
    /// stream limit: nghttp2 refuses streams past it before any header).
    @exclusivity(unchecked) private var block = HeaderBlock()
    @exclusivity(unchecked) private var blockStream: Int32 = 0

    private struct HeaderBlock {
        var headers: [HTTP2Header] = []
        var size = 0
        var tooLarge = false
    }

    public init(role: Role, settings: HTTP2Settings = HTTP2Settings(), delegate: any HTTP2SessionDelegate) {
        self.role = role
        self.settings = settings
        self.delegate = delegate
        resets = TokenBucket(burst: settings.resetBurst, perSecond: settings.resetsPerSecond)
        controlFrames = TokenBucket(burst: settings.controlBurst, perSecond: settings.controlFramesPerSecond)

        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_send_callback(callbacks, sendCallback)
        nghttp2_session_callbacks_set_send_data_callback(callbacks, sendDataCallback)
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, beginHeadersCallback)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, headerCallback)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, frameReceivedCallback)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, dataChunkCallback)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, streamCloseCallback)
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, beginFrameCallback)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, frameSentCallback)

        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_continuations(option, settings.maxContinuations)
        nghttp2_option_set_max_outbound_ack(option, settings.maxOutboundAcks)
        // Our own bucket (above) answers resets with ENHANCE_YOUR_CALM
        // first; nghttp2's looser default stays as a backstop.

        let me = Unmanaged.passUnretained(self).toOpaque()
        let rc = role == .server
            ? nghttp2_session_server_new2(&session, callbacks, me, option)
            : nghttp2_session_client_new2(&session, callbacks, me, option)
        precondition(rc == 0 && session != nil, "nghttp2_session_new: out of memory")

        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.streamWindow),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
        ]
        if role == .server && settings.enableConnectProtocol {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL.rawValue), value: 1))
        }
        if role == .client {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        if settings.connectionWindow > 65535 {
            nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(clamping: settings.connectionWindow))
        }
    }

    deinit {
        nghttp2_session_del(session)
    }

    // MARK: Input

    /// Feeds received bytes at time `now` (nanoseconds, the caller's clock).
    /// False once the session will read nothing more (a failure, ours or
    /// nghttp2's, or GOAWAY exchanged and no stream left): send what is
    /// queued, then close.
    @discardableResult
    public func receive(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Bool {
        guard failure == nil else { return false }
        self.now = now
        if bytes.count > 0 {
            let rc = nghttp2_session_mem_recv(session, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
            if rc < 0 { fail(Int32(rc)) }
        }
        return failure == nil && nghttp2_session_want_read(session) != 0
    }

    public func receive(_ bytes: [UInt8], now: UInt64) -> Bool {
        bytes.withUnsafeBytes { receive($0, now: now) }
    }

    private func fail(_ rc: Int32) {
        guard failure == nil else { return }
        switch rc {
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue:
            fail("bad client preface", code: .protocolError)
        case NGHTTP2_ERR_FLOODED.rawValue:
            fail("flood: acknowledgements queued for a peer that does not read", code: .enhanceYourCalm)
        case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue:
            fail("flood: too many CONTINUATION frames", code: .enhanceYourCalm)
        default:
            fail(String(cString: nghttp2_strerror(rc)), code: .internalError)
        }
    }

    /// Ends the session from our side: GOAWAY with `code` (queued; `send` it).
    public func fail(_ reason: String, code: HTTP2ErrorCode) {
        guard failure == nil else { return }
        failure = reason
        nghttp2_session_terminate_session(session, code.rawValue)
    }

    // MARK: Output

    /// Hands everything that may leave now to the delegate (frames, and
    /// DATA as far as windows and the delegate's sources allow).
    public func send() {
        let rc = nghttp2_session_send(session)
        if rc != 0 && failure == nil { failure = String(cString: nghttp2_strerror(rc)) }
    }

    /// Nothing left to read or write: the session is done.
    public var isFinished: Bool { nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 }
    public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    /// Response headers on `stream`; `body`: DATA follows from the
    /// delegate's source, else the stream ends with these headers.
    /// `source` comes back in `dataReady`/`sendData` (the caller keeps what
    /// it points to alive until the stream is closed).
    @discardableResult
    public func submitResponse(stream: Int32, headers: [HTTP2Header], body: Bool, source: UnsafeMutableRawPointer? = nil) -> Bool {
        withNameValues(headers) { nva, count in
            if body {
                var provider = Self.provider
                provider.source.ptr = source
                return nghttp2_submit_response(session, stream, nva, count, &provider) == 0
            }
            return nghttp2_submit_response(session, stream, nva, count, nil) == 0
        }
    }

    /// A client request; returns its stream id (negative: refused).
    /// `source`: as for `submitResponse`, and the stream's user data too
    /// (`userData(stream:)`).
    public func submitRequest(headers: [HTTP2Header], body: Bool, source: UnsafeMutableRawPointer? = nil) -> Int32 {
        withNameValues(headers) { nva, count in
            if body {
                var provider = Self.provider
                provider.source.ptr = source
                return nghttp2_submit_request(session, nil, nva, count, &provider, source)
            }
            return nghttp2_submit_request(session, nil, nva, count, nil, source)
        }
    }

    /// The pointer the caller attached to `stream` (nil: none, or no such
    /// stream): a lookup in nghttp2's own stream map, for the per-DATA path.
    public func userData(stream: Int32) -> UnsafeMutableRawPointer? {
        nghttp2_session_get_stream_user_data(session, stream)
    }

    /// Attaches `pointer` to `stream` (the caller keeps what it points to
    /// alive until the stream is closed).
    public func setUserData(stream: Int32, _ pointer: UnsafeMutableRawPointer?) {
        nghttp2_session_set_stream_user_data(session, stream, pointer)
    }

    /// Trailers ending `stream` (call from `dataReady` when answering
    /// `.bytes(_, end: true, trailers: true)`, or once its DATA is done).
    @discardableResult
    public func submitTrailers(stream: Int32, headers: [HTTP2Header]) -> Bool {
        withNameValues(headers) { nva, count in nghttp2_submit_trailer(session, stream, nva, count) == 0 }
    }

    /// A deferred DATA source has bytes again.
    public func resumeData(stream: Int32) {
        nghttp2_session_resume_data(session, stream)
    }

    /// The caller has used `bytes` of `stream`'s DATA: its window reopens.
    public func consume(stream: Int32, bytes: Int) {
        guard bytes > 0 else { return }
        nghttp2_session_consume_stream(session, stream, bytes)
    }

    public func resetStream(_ stream: Int32, code: HTTP2ErrorCode) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, code.rawValue)
    }

    /// GOAWAY naming the last stream we took: streams up to it finish,
    /// newer ones are refused (a drain).
    public func goAway(code: HTTP2ErrorCode = .noError) {
        nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
                              nghttp2_session_get_last_proc_stream_id(session), code.rawValue, nil, 0)
    }

    public func ping() {
        nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// Bytes the peer lets us send on `stream` now: the smaller of its
    /// window and the connection's; -1 for a stream that is not open.
    public func sendWindow(stream: Int32) -> Int {
        let own = Int(nghttp2_session_get_stream_remote_window_size(session, stream))
        return own < 0 ? -1 : min(own, Int(nghttp2_session_get_remote_window_size(session)))
    }

    // MARK: nghttp2 callbacks (through the opaque `user_data`)

    private static let provider: nghttp2_data_provider = {
        var p = nghttp2_data_provider()
        p.read_callback = readCallback
        return p
    }()

    fileprivate static func from(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session {
        Unmanaged<HTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
    }

    /// The session behind `user_data`, without reference counting (the
    /// session outlives every callback nghttp2 makes on it).
    @inline(__always)
    fileprivate static func with<R>(_ userData: UnsafeMutableRawPointer?, _ body: (HTTP2Session) -> R) -> R {
        Unmanaged<HTTP2Session>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
    }

    /// The highest stream id the peer has opened (a server's view).
    @exclusivity(unchecked) private var lastPeerStream: Int32 = 0

    /// RFC 9113 §5.1.1: a new stream id lower than one already used is a
    /// connection error. nghttp2 1.52 ignores such HEADERS silently.
    fileprivate func beginFrame(_ hd: nghttp2_frame_hd) {
        guard role == .server, UInt32(hd.type) == NGHTTP2_HEADERS.rawValue, hd.stream_id & 1 == 1 else { return }
        if hd.stream_id > lastPeerStream {
            lastPeerStream = hd.stream_id
        } else if hd.stream_id < lastPeerStream && nghttp2_session_find_stream(session, hd.stream_id) == nil {
            fail("stream id \(hd.stream_id) is lower than one already used", code: .protocolError)
        }
    }

    /// A GOAWAY with an error that nghttp2 decided on (a protocol error in
    /// the peer's bytes) ends the session as ours do.
    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) {
        guard UInt32(frame.pointee.hd.type) == NGHTTP2_GOAWAY.rawValue, failure == nil else { return }
        let code = frame.pointee.goaway.error_code
        guard code != HTTP2ErrorCode.noError.rawValue else { return }
        var reason = String(cString: nghttp2_http2_strerror(code))
        if let data = frame.pointee.goaway.opaque_data, frame.pointee.goaway.opaque_data_len > 0 {
            reason += ": " + String(decoding: UnsafeRawBufferPointer(start: data, count: frame.pointee.goaway.opaque_data_len), as: UTF8.self)
        }
        failure = reason
    }

    fileprivate func beginHeaders(stream: Int32) {
        block = HeaderBlock()
        block.headers.reserveCapacity(12)
        blockStream = stream
    }

    fileprivate func header(stream: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        guard stream == blockStream else { return }
        block.size += name.count + value.count + 32       // RFC 9113 §6.5.2
        if block.size > Int(settings.maxHeaderListSize) {
            block.tooLarge = true
        } else if !block.tooLarge {
            block.headers.append(HTTP2Header(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            let block = hd.stream_id == blockStream ? self.block : HeaderBlock()
            self.block = HeaderBlock()
            blockStream = 0
            delegate.http2(self, headers: block.headers, stream: hd.stream_id, endStream: endStream, tooLarge: block.tooLarge)
        case NGHTTP2_DATA.rawValue:
            if endStream {
                delegate.http2(self, endOfStream: hd.stream_id)
            } else if hd.length == 0 {
                spend(&controlFrames, "flood: empty DATA frames")
            }
        case NGHTTP2_RST_STREAM.rawValue:
            spend(&resets, "rapid reset: too many streams reset by the peer")
        case NGHTTP2_SETTINGS.rawValue, NGHTTP2_PING.rawValue:
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 {
                spend(&controlFrames, "flood: SETTINGS or PING frames")
            } else if UInt32(hd.type) == NGHTTP2_PING.rawValue {
                delegate.http2PingAcknowledged(self)
            }
        case NGHTTP2_PRIORITY.rawValue:
            spend(&controlFrames, "flood: PRIORITY frames")
        case NGHTTP2_GOAWAY.rawValue:
            delegate.http2(self, goAway: frame.pointee.goaway.error_code, lastStream: frame.pointee.goaway.last_stream_id)
        default:
            break
        }
        return 0
    }

    private func spend(_ bucket: inout TokenBucket, _ reason: String) {
        if !bucket.take(now: now) { fail(reason, code: .enhanceYourCalm) }
    }

    fileprivate func dataChunk(stream: Int32, _ bytes: UnsafeRawBufferPointer) {
        // The connection's window reopens at once; the stream's when the
        // delegate consumes (see the class comment).
        nghttp2_session_consume_connection(session, bytes.count)
        delegate.http2(self, data: bytes, stream: stream)
    }

    fileprivate func streamClosed(_ stream: Int32, errorCode: UInt32) {
        if stream == blockStream {
            block = HeaderBlock()
            blockStream = 0
        }
        delegate.http2(self, closed: stream, errorCode: errorCode)
    }

    private func withNameValues<R>(_ headers: [HTTP2Header], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        // One buffer for every name and value (nghttp2 copies them), the
        // name-value array on the stack.
        var storage: [UInt8] = []
        storage.reserveCapacity(headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        for h in headers {
            storage += h.name.utf8
            storage += h.value.utf8
        }
        return storage.withUnsafeMutableBufferPointer { buf in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(headers.count, 1)) { nva in
                var p = buf.baseAddress ?? UnsafeMutablePointer<UInt8>(bitPattern: 1)!
                for (i, h) in headers.enumerated() {
                    let n = h.name.utf8.count, v = h.value.utf8.count
                    nva[i] = nghttp2_nv(name: p, value: p + n, namelen: n, valuelen: v, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                    p += n + v
                }
                return body(nva.baseAddress!, headers.count)
            }
        }
    }
}

// C callbacks: no captures; `user_data` is the session.

private let sendCallback: nghttp2_send_callback = { _, data, length, _, userData in
    HTTP2Session.with(userData) { s in
        guard s.delegate.http2(s, output: UnsafeRawBufferPointer(start: data, count: length)) else {
            return Int(NGHTTP2_ERR_WOULDBLOCK.rawValue)
        }
        return length
    }
}

private let sendDataCallback: nghttp2_send_data_callback = { _, frame, frameHeader, length, source, userData in
    HTTP2Session.with(userData) { s in
        let stream = frame!.pointee.hd.stream_id
        guard s.delegate.http2(s, sendData: stream, source: source?.pointee.ptr,
                               frameHeader: UnsafeRawBufferPointer(start: frameHeader, count: 9), length: length) else {
            return NGHTTP2_ERR_WOULDBLOCK.rawValue
        }
        return 0
    }
}

private let readCallback: nghttp2_data_source_read_callback = { _, stream, _, length, flags, source, userData in
    let ready = HTTP2Session.with(userData) { s in s.delegate.http2(s, dataReady: stream, source: source?.pointee.ptr, max: length) }
    switch ready {
    case .deferred:
        return Int(NGHTTP2_ERR_DEFERRED.rawValue)
    case .bytes(let n, let end, let trailers):
        var f = NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        if end { f |= NGHTTP2_DATA_FLAG_EOF.rawValue }
        if trailers { f |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue }
        flags!.pointee = f
        return n
    }
}

private let beginHeadersCallback: nghttp2_on_begin_headers_callback = { _, frame, userData in
    HTTP2Session.from(userData).beginHeaders(stream: frame!.pointee.hd.stream_id)
    return 0
}

private let headerCallback: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    HTTP2Session.from(userData).header(stream: frame!.pointee.hd.stream_id,
                                       name: UnsafeRawBufferPointer(start: name, count: nameLength),
                                       value: UnsafeRawBufferPointer(start: value, count: valueLength))
    return 0
}

private let frameReceivedCallback: nghttp2_on_frame_recv_callback = { _, frame, userData in
    HTTP2Session.with(userData) { $0.frameReceived(frame!) }
}

private let dataChunkCallback: nghttp2_on_data_chunk_recv_callback = { _, _, stream, data, length, userData in
    HTTP2Session.with(userData) { $0.dataChunk(stream: stream, UnsafeRawBufferPointer(start: data, count: length)) }
    return 0
}

private let beginFrameCallback: nghttp2_on_begin_frame_callback = { _, hd, userData in
    HTTP2Session.with(userData) { $0.beginFrame(hd!.pointee) }
    return 0
}

private let frameSentCallback: nghttp2_on_frame_send_callback = { _, frame, userData in
    HTTP2Session.with(userData) { $0.frameSent(frame!) }
    return 0
}

private let streamCloseCallback: nghttp2_on_stream_close_callback = { _, stream, errorCode, userData in
    HTTP2Session.from(userData).streamClosed(stream, errorCode: errorCode)
    return 0
}
