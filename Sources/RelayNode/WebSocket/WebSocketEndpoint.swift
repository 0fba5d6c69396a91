import Reactor
import Framing

/// What a WebSocket connection carries messages for (the echo test
/// endpoint, a runner, a browser). Calls come on the connection's loop.
protocol WebSocketEndpoint: AnyObject {
    /// The upgrade response is queued; messages may follow at once.
    func webSocketOpened(_ ws: WebSocketConnection)
    /// A complete text or binary message. `payload` is valid during the call;
    /// `frame` is non-nil when the message was one frame inside the read
    /// slab, so it can be forwarded without a copy (`ServerFrame.inPlace`).
    func webSocket(_ ws: WebSocketConnection, received opcode: WebSocketOpcode,
                   payload: UnsafeRawBufferPointer, frame: ReceivedFrame?)
    /// The outbound queue drained after a refused send (or `notifyWhenDrained`).
    func webSocketDrained(_ ws: WebSocketConnection)
    /// The connection is gone; `code` is the close code seen or sent (1006 if none).
    func webSocketClosed(_ ws: WebSocketConnection, code: UInt16)
}

extension WebSocketEndpoint {
    func webSocketOpened(_ ws: WebSocketConnection) {}
    func webSocketDrained(_ ws: WebSocketConnection) {}
}
