import Glibc
import Reactor
import Framing
@_exported import TLS

/// What a client WebSocket reports; calls come on its loop.
public protocol WebSocketClientDelegate: AnyObject {
    func clientOpened(_ client: WebSocketClient)
    func client(_ client: WebSocketClient, received opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer)
    /// Closed: `code` from the server's Close if one came; `error` when the
    /// connect, the handshake or the stream failed.
    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?)
    /// The outbound queue drained after a refused send.
    func clientDrained(_ client: WebSocketClient)
}

extension WebSocketClientDelegate {
    public func clientDrained(_ client: WebSocketClient) {}
}

/// A client-side RFC 6455 connection on the Reactor (for `relay attach` and
/// `loadgen`): sends the upgrade request, checks the 101 and the accept
/// value, then masks what it sends; what the server sends goes through the
/// same `WebSocketSession` as the relay's own server side.
public final class WebSocketClient: ConnectionHandler {
    public private(set) var connection: TCPConnection!
    /// Strong, and dropped when the connection closes (which breaks the
    /// cycle with a delegate that holds its client): a weak reference would
    /// cost an atomic load and release per message.
    public var delegate: (any WebSocketClientDelegate)?
    public let url: WebSocketURL
    private let extraHeaders: [(String, String)]
    private var key = ""
    private var response: [UInt8] = []
    /// Held across delegate callbacks, which never touch it.
    @exclusivity(unchecked) private var session: WebSocketSession
    /// Before the upgrade completes; then the session's state is the state.
    private enum Handshake { case connecting, handshaking, done, failed }
    @exclusivity(unchecked) private var handshake = Handshake.connecting
    private var failure: String?
    /// xorshift64 state for mask keys (a client need not use a CSPRNG for
    /// masking against its own relay; the key only has to vary).
    private var maskState: UInt64

    public var isOpen: Bool { handshake == .done && session.state == .open }
    /// When the bytes being delivered were read (one clock read per read,
    /// not per message: latency measurement without a syscall per message).
    @exclusivity(unchecked) private var readNanos: UInt64 = 0
    // A method, not a public property: another module reading the property
    // directly would check exclusivity on every message.
    public var lastReadNanos: UInt64 { readNanos }

    /// permessage-deflate: the codec offered with (shared by the caller's
    /// connections on one loop), and whether the server accepted.
    private let codec: PerMessageDeflateCodec?
    public private(set) var compressed = false
    private let maxMessageSize: Int
    /// Messages at least this long are compressed when the server agreed.
    public var compressionMinSize = 64

    private init(url: WebSocketURL, headers: [(String, String)], maxMessageSize: Int, codec: PerMessageDeflateCodec?) {
        self.url = url
        self.codec = codec
        self.maxMessageSize = maxMessageSize
        extraHeaders = headers
        session = WebSocketSession(expectMasked: false, maxMessageSize: maxMessageSize)
        maskState = UInt64.random(in: 1...UInt64.max)
    }

    /// Starts connecting on `loop` (call on that loop).
    public static func connect(
        to url: WebSocketURL, on loop: EventLoop, delegate: any WebSocketClientDelegate,
        headers: [(String, String)] = [], source: SocketAddress? = nil, maxMessageSize: Int = 64 << 20,
        outboundLimit: Int = 1 << 20, configure: ((Int32) -> Void)? = nil, tls: TLSContext? = nil,
        compression: PerMessageDeflateCodec? = nil
    ) throws -> WebSocketClient {
        if url.secure && tls == nil { throw SystemError("connect", code: EINVAL, detail: "\(url) needs a TLS client context") }
        let client = WebSocketClient(url: url, headers: headers, maxMessageSize: maxMessageSize, codec: compression)
        client.delegate = delegate
        let host = url.host
        client.connection = try TCPConnection.connect(
            to: url.address(), from: source, on: loop, handler: client, outboundLimit: outboundLimit, configure: configure,
            transport: url.secure ? { fd in try TLSTransport(fd: fd, context: tls!, serverName: host) } : nil)
        return client
    }

    // MARK: Sending

    @inline(__always)
    private func nextMask() -> UInt32 {
        maskState ^= maskState << 13
        maskState ^= maskState >> 7
        maskState ^= maskState << 17
        return UInt32(truncatingIfNeeded: maskState)
    }

    /// Masks a copy of `payload` into a new frame and queues it. False when
    /// refused (outbound bound, or not open).
    @discardableResult
    public func send(_ opcode: WebSocketOpcode = .binary, _ payload: UnsafeRawBufferPointer, force: Bool = false) -> Bool {
        guard handshake == .done, session.state == .open || (session.state == .closing && opcode == .close) else { return false }
        if compressed, let codec, !opcode.isControl, payload.count >= compressionMinSize {
            // Each message on its own (the server asked for client_no_context_takeover).
            let room = codec.compressBound(payload.count)
            let deflated = UnsafeMutableRawBufferPointer.allocate(byteCount: room, alignment: 1)
            defer { deflated.deallocate() }
            let n = codec.compress(payload, to: deflated.baseAddress!, capacity: room)
            let body = UnsafeRawBufferPointer(start: deflated.baseAddress, count: n)
            let slab = Slab.allocate(capacity: WebSocketEncoder.clientFrameSize(payloadLength: n))
            defer { slab.release() }
            slab.used = WebSocketEncoder.writeClientFrame(opcode: opcode, payload: body, maskKey: nextMask(), to: slab.base)
            slab.base.storeBytes(of: slab.base.load(as: UInt8.self) | 0x40, as: UInt8.self)     // RSV1: compressed
            return connection.enqueue(slab.written, force: force)
        }
        let size = WebSocketEncoder.clientFrameSize(payloadLength: payload.count)
        let slab = Slab.allocate(capacity: size)
        defer { slab.release() }
        slab.used = WebSocketEncoder.writeClientFrame(opcode: opcode, payload: payload, maskKey: nextMask(), to: slab.base)
        return connection.enqueue(slab.written, force: force)
    }

    @discardableResult
    public func send(_ opcode: WebSocketOpcode = .binary, bytes: [UInt8], force: Bool = false) -> Bool {
        bytes.withUnsafeBytes { send(opcode, $0, force: force) }
    }

    /// Sends Close; the server answers and closes the TCP connection.
    public func close(code: UInt16 = WebSocketCloseCode.normal, reason: String = "") {
        guard handshake == .done, let payload = session.close(code: code, reason: reason) else {
            if session.state != .closed { connection.close() }
            return
        }
        send(.close, bytes: payload, force: true)
        // Give the server a moment to answer, then drop.
        connection.loop.schedule(afterNanoseconds: 2_000_000_000) { [weak self] in self?.connection?.close() }
    }

    // MARK: ConnectionHandler

    public func connectionConnected(_ c: TCPConnection) {
        var raw = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { raw[i] = UInt8.random(in: 0...255) }
        key = Base64.encode(raw)
        var head = "GET \(url.target) HTTP/1.1\r\nHost: \(url.host):\(url.port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if codec != nil { head += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" }
        for (k, v) in extraHeaders { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        handshake = .handshaking
        c.enqueue(copying: Array(head.utf8))
    }

    public func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        readNanos = MonotonicClock.now()
        if handshake == .handshaking {
            response += bytes.bytes
            guard let end = Self.headEnd(response) else {
                if response.count > 16384 { fail("handshake response too large") }
                return
            }
            let head = String(decoding: response[..<end], as: UTF8.self)
            let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            guard let status = lines.first, status.hasPrefix("HTTP/1.1 101") else {
                let first = lines.first.map(String.init) ?? ""
                let body = String(decoding: response[min(end + 4, response.count)...], as: UTF8.self)
                fail("upgrade refused: \(first) \(body)".trimmingCharacters())
                return
            }
            let expected = WebSocketHandshake.acceptValue(forKey: key)
            let accept = lines.dropFirst().first { $0.lowercased().hasPrefix("sec-websocket-accept:") }
                .map { String($0.dropFirst("sec-websocket-accept:".count)).trimmingCharacters() }
            guard accept == expected else {
                fail("bad Sec-WebSocket-Accept")
                return
            }
            // permessage-deflate, if the server took the offer (its answer
            // must keep to what was offered: no context takeover is fine).
            let extensions = lines.dropFirst().filter { $0.lowercased().hasPrefix("sec-websocket-extensions:") }
                .map { String($0.dropFirst("sec-websocket-extensions:".count)).trimmingCharacters() }
            if !extensions.isEmpty {
                guard codec != nil, extensions.count == 1,
                      extensions[0].lowercased().hasPrefix(PerMessageDeflateNegotiation.token) else {
                    fail("the server answered an extension that was not offered: \(extensions)")
                    return
                }
                compressed = true
                session = WebSocketSession(expectMasked: false, maxMessageSize: maxMessageSize, compressed: true)
            }
            handshake = .done
            let rest = Array(response[(end + 4)...])
            response = []
            delegate?.clientOpened(self)
            if !rest.isEmpty && isOpen {
                let copy = Slab.copying(rest)
                defer { copy.release() }
                feed(copy.written)
            }
            return
        }
        guard handshake == .done else { return }
        feed(bytes)
    }

    private func feed(_ bytes: SlabSlice) {
        let input = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: bytes.start), count: bytes.count)
        // One reference to the delegate per read, not one per message.
        let receiver = delegate
        session.receive(input, inflater: compressed ? codec : nil) { action in
            switch action {
            case .deliver(let opcode, let payload, _):
                receiver?.client(self, received: opcode, payload: payload)
            case .send(let opcode, let payload):
                send(opcode, payload, force: true)
            case .closeTransport:
                connection.close(afterFlush: true)
            }
        }
        if let error = session.error, failure == nil {
            failure = "protocol error from server: \(error.reason) (\(error.closeCode))"
        }
    }

    /// The handshake failed: closed at once, reported as an error.
    private func fail(_ message: String) {
        let d = delegate
        handshake = .failed
        session.transportClosed()
        connection.close()
        delegate = nil
        d?.clientClosed(self, code: nil, error: message)
    }

    public func connectionDrained(_ c: TCPConnection) { delegate?.clientDrained(self) }

    public func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        guard handshake != .failed, session.state != .closed || handshake != .done else { return }
        let wasOpen = handshake == .done
        session.transportClosed()
        let d = delegate
        delegate = nil
        let message = wasOpen ? failure : (error.map { "\($0)" } ?? "connection closed during handshake")
        d?.clientClosed(self, code: session.peerCloseCode, error: message)
    }

    static func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
