/// One end of an RFC 6455 connection above the frame codec, for the server
/// and the client alike: decodes what the peer sends, answers Ping with
/// Pong, runs the closing handshake (§7) and fails the connection on a
/// protocol error (§7.1.7). No I/O: the owner feeds bytes in and carries out
/// what the session asks for (send a control frame, close the transport).
///
/// Transitions (anything else leaves the state as it is):
///
/// | state   | input                      | actions                                  | next    |
/// |---------|----------------------------|------------------------------------------|---------|
/// | open    | message                    | deliver                                  | open    |
/// | open    | Ping                       | send Pong (same payload)                 | open    |
/// | open    | Close (code?)              | send Close (same code), close transport  | closing |
/// | open    | `close(code:)`             | send Close (code)                        | closing |
/// | open    | protocol error             | send Close (error's code), close transport | closing |
/// | open    | transport ended (peer FIN) | close transport                          | closing |
/// | closing | Close                      | close transport                          | closing |
/// | closing | protocol error             | close transport                          | closing |
/// | closing | message, Ping, Pong        | (ignored)                                | closing |
/// | any     | transport closed           |                                          | closed  |
///
/// `closeCode` is the code sent or seen: the peer's (1005 when its Close had
/// none), ours, the error's, or 1006 when the transport ended without one.
public struct WebSocketSession: ~Copyable {
    public enum State: UInt8, Sendable { case open, closing, closed }

    /// What the owner must do, in order.
    public enum Action {
        /// A complete text or binary message (see `WebSocketEvent.message`).
        case deliver(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, location: WebSocketPayloadLocation)
        /// Send this control frame (Pong or Close); the payload is valid during the call.
        case send(WebSocketOpcode, UnsafeRawBufferPointer)
        /// Close the transport once what is queued is written.
        case closeTransport
    }

    private var decoder: WebSocketDecoder
    public private(set) var state = State.open
    public private(set) var closeCode: UInt16 = WebSocketCloseCode.abnormal
    /// The code of the peer's Close, if it sent one with a code.
    public private(set) var peerCloseCode: UInt16?

    /// The protocol error that failed the connection, if one did.
    public var error: WebSocketDecodeError? { decoder.failure }

    /// `expectMasked`: true on the server (clients mask), false on the client.
    /// `compressed`: permessage-deflate was negotiated (then `receive` is
    /// given the loop's codec).
    public init(expectMasked: Bool, maxMessageSize: Int, compressed: Bool = false) {
        decoder = WebSocketDecoder(configuration: .init(expectMasked: expectMasked, maxMessageSize: maxMessageSize,
                                                        compressed: compressed))
    }

    /// Heap bytes held for incomplete frames; 0 when idle.
    public var bufferedCapacity: Int { decoder.bufferedCapacity }

    /// Decodes `input` (unmasked in place) and reports what to do.
    public mutating func receive(_ input: UnsafeMutableRawBufferPointer, inflater: PerMessageDeflateCodec? = nil,
                                 _ act: (Action) -> Void) {
        guard state != .closed else { return }
        // The state cannot change while the decoder runs: a Close ends the
        // decoding (later bytes are ignored), so it is handled afterwards.
        let open = state == .open
        var close: UInt16?? = nil
        let failure = decoder.feed(input, inflater: inflater) { event in
            switch event {
            case .message(let opcode, let payload, let location):
                if open { act(.deliver(opcode: opcode, payload: payload, location: location)) }
            case .ping(let payload):
                if open { act(.send(.pong, payload)) }
            case .pong:
                break
            case .close(let code, _):
                close = .some(code)
            }
        }
        if let code = close { receivedClose(code: code, act) }
        guard let failure, state != .closed else { return }
        if state == .open {
            closeCode = failure.closeCode
            state = .closing
            WebSocketEncoder.closePayload(code: failure.closeCode, reason: failure.reason).withUnsafeBytes { act(.send(.close, $0)) }
        }
        act(.closeTransport)
    }

    private mutating func receivedClose(code: UInt16?, _ act: (Action) -> Void) {
        peerCloseCode = code
        switch state {
        case .open:
            // Echo the peer's code (§5.5.1), then close the transport.
            closeCode = code ?? WebSocketCloseCode.noStatus
            state = .closing
            let echo = code.map { WebSocketEncoder.closePayload(code: $0, reason: "") } ?? []
            echo.withUnsafeBytes { act(.send(.close, $0)) }
            act(.closeTransport)
        case .closing:
            act(.closeTransport)
        case .closed:
            break
        }
    }

    /// Starts the closing handshake from this side. Returns the Close
    /// payload to send, or nil when the session is not open.
    public mutating func close(code: UInt16, reason: String) -> [UInt8]? {
        guard state == .open else { return nil }
        state = .closing
        closeCode = code
        return WebSocketEncoder.closePayload(code: code, reason: reason)
    }

    /// The peer half-closed the transport (read end of stream): it is
    /// leaving. Returns whether the owner should close the transport.
    public mutating func transportEnded() -> Bool {
        if state == .open { state = .closing }
        return state != .closed
    }

    /// The transport is gone.
    public mutating func transportClosed() {
        state = .closed
    }

    /// The transport is being dropped without a closing handshake (a
    /// silent peer, a timeout): the code becomes 1006.
    public mutating func transportAbandoned() {
        state = .closed
        closeCode = WebSocketCloseCode.abnormal
    }
}

// Owned by one connection and noncopyable: safe to move between isolation domains.
extension WebSocketSession: @unchecked Sendable {}
