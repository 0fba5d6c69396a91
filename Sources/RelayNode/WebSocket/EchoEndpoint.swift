import Reactor
import Framing

/// Test-only endpoint (`--echo-endpoint`, path /test/echo) for conformance
/// runs: every message goes back as it came, forwarded in place when it was
/// one frame (zero copy). At the outbound bound it queues the message anyway
/// and stops reading until the queue drains, so memory stays bounded by the
/// queue limit plus one message.
final class EchoEndpoint: WebSocketEndpoint {
    /// Autobahn's section 9 sends messages of up to 16 MiB.
    static let maxMessageSize = 64 << 20

    func webSocket(_ ws: WebSocketConnection, received opcode: WebSocketOpcode,
                   payload: UnsafeRawBufferPointer, frame: ReceivedFrame?) {
        let accepted: Bool
        if let frame {
            let out = ServerFrame.inPlace(frame, opcode: opcode)
            accepted = ws.send(frame: out) || { ws.pauseReading(); return ws.send(frame: out, force: true) }()
        } else {
            accepted = ws.send(opcode: opcode, copying: payload)
                || { ws.pauseReading(); return ws.send(opcode: opcode, copying: payload, force: true) }()
        }
        _ = accepted
    }

    func webSocketDrained(_ ws: WebSocketConnection) { ws.resumeReading() }

    func webSocketClosed(_ ws: WebSocketConnection, code: UInt16) {}
}
