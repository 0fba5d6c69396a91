import Glibc
import Framing
import Reactor
import RelayClient

/// Which server is measured, and how to reach it.
struct Target: Sendable {
    enum Kind: String, Sendable { case relay, nats }
    let kind: Kind
    let url: WebSocketURL
    let secret: String
    let issuer: String
    /// Local addresses to connect from (127.0.0.x), spreading ephemeral ports.
    let sources: [SocketAddress]
    /// The client context when the URL is wss:// (one per run: contexts
    /// are costly, connections from one share it).
    let tls: TLSContext?

    func token(pod: String, userID: Int64) -> String {
        let now = Int64(time(nil))
        let claims = JWTClaims(podKey: pod, runnerID: 1, userID: userID, orgID: 1, exp: now + 24 * 3600, iat: now,
                               iss: issuer.isEmpty ? nil : issuer, sub: pod)
        return JWTSigner.sign(claims, secret: Array(secret.utf8))
    }

    /// A publisher (relay: the pod's runner; nats: a publishing connection).
    func publisher(pod: String, index: Int, on loop: EventLoop) throws -> MessageEndpoint {
        switch kind {
        case .relay:
            return try connect(RelayEndpoint(), target: "/runner/relay?token=\(token(pod: pod, userID: 0))", index: index, on: loop)
        case .nats:
            return try connect(NatsEndpoint(subject: pod, subscribe: false), target: "/", index: index, on: loop)
        }
    }

    /// A subscriber (relay: a browser of the pod; nats: SUB on the pod's subject).
    func subscriber(pod: String, index: Int, on loop: EventLoop, extraQuery: String = "") throws -> MessageEndpoint {
        switch kind {
        case .relay:
            return try connect(RelayEndpoint(), target: "/browser/relay?token=\(token(pod: pod, userID: Int64(index + 1)))\(extraQuery)", index: index, on: loop)
        case .nats:
            return try connect(NatsEndpoint(subject: pod, subscribe: true), target: "/", index: index, on: loop)
        }
    }

    /// An echo connection (relay: /test/echo; nats: SUB and PUB on its own subject).
    func echo(index: Int, on loop: EventLoop) throws -> MessageEndpoint {
        switch kind {
        case .relay: return try connect(RelayEndpoint(), target: "/test/echo", index: index, on: loop)
        case .nats: return try connect(NatsEndpoint(subject: "echo.\(index).\(UInt32.random(in: 0...UInt32.max))", subscribe: true), target: "/", index: index, on: loop)
        }
    }

    private func connect(_ e: MessageEndpoint, target: String, index: Int, on loop: EventLoop) throws -> MessageEndpoint {
        let source = sources.isEmpty ? nil : sources[index % sources.count]
        e.client = try WebSocketClient.connect(to: url.with(target: target), on: loop, delegate: e, source: source,
                                               outboundLimit: 64 << 20, tls: tls)
        return e
    }
}

final class RelayEndpoint: MessageEndpoint {}
