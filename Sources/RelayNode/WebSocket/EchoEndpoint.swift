import Reactor
import Framing

/// Test-only endpoint (`--echo-endpoint`, path /test/echo) for conformance
/// runs: every message goes back as it came, forwarded in place when it was
/// one frame (zero copy). At the outbound bound it queues the message anyway
/// and stops reading until the queue drains, so memory stays bounded by the
/// queue limit plus one message.
final class EchoEndpoint: MessageStreamEndpoint {
    /// Autobahn's section 9 sends messages of up to 16 MiB.
    static let maxMessageSize = 64 << 20

    func stream(_ stream: MessageStream, received message: ReceivedMessage) {
        if !stream.forward(message, force: false) {
            stream.pauseReading()
            _ = stream.forward(message, force: true)
        }
    }

    func streamDrained(_ stream: MessageStream) { stream.resumeReading() }

    func streamClosed(_ stream: MessageStream, code: UInt16) {}
}
