import Glibc
import Framing
import Reactor
import RelayClient

/// Which server is measured, and how to reach it.
struct Target: Sendable {
    enum Kind: String, Sendable { case relay, nats }
    enum Transport: String, Sendable { case ws, h2c, h2, grpc }
    let kind: Kind
    let url: WebSocketURL
    let secret: String
    let issuer: String
    /// Local addresses to connect from (127.0.0.x), spreading ephemeral ports.
    let sources: [SocketAddress]
    /// The client context when the URL is wss:// (one per run: contexts
    /// are costly, connections from one share it).
    let tls: TLSContext?
    let transport: Transport
    /// The HTTP/2 connections streams share (nil: WebSocket over HTTP/1.1).
    let pool: HTTP2Pool?
    /// permessage-deflate codecs, one per loop (nil: no compression offered).
    let codecs: CodecPool?

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
        if let pool {
            let h2 = H2Endpoint()
            let connection = try pool.connection(on: loop, url: url, source: source, tls: tls)
            let scheme = url.secure ? "https" : "http"
            if transport == .grpc {
                // The token from the target's query goes in the metadata.
                let token = target.split(separator: "token=").last.map { String($0.prefix { $0 != "&" }) } ?? ""
                var metadata = [HTTP2Header("authorization", "Bearer \(token)")]
                if target.contains("ext=1") { metadata.append(HTTP2Header("x-relay-ext", "1")) }
                h2.stream = connection.grpc(path: "/relay.v1.Relay/Attach", scheme: scheme, metadata: metadata, delegate: h2)
            } else {
                h2.stream = connection.webSocket(path: target, scheme: scheme, delegate: h2)
            }
            return h2
        }
        e.client = try WebSocketClient.connect(to: url.with(target: target), on: loop, delegate: e, source: source,
                                               outboundLimit: 64 << 20, tls: tls, compression: codecs?.codec(on: loop))
        return e
    }
}

final class RelayEndpoint: MessageEndpoint {}

/// A relay client as one stream of a shared HTTP/2 connection.
final class H2Endpoint: MessageEndpoint, HTTP2ClientStreamDelegate {
    var stream: HTTP2ClientStream!

    override func send(_ payload: UnsafeRawBufferPointer) -> Bool { stream.send(payload) }
    override func flushNow() { stream.connection.flushNow() }
    override func close() { stream.connection.close() }

    func streamOpened(_ stream: HTTP2ClientStream) { markReady() }
    func stream(_ stream: HTTP2ClientStream, received payload: UnsafeRawBufferPointer) { deliver(payload, at: stream.lastReadNanos) }
    func streamDrained(_ stream: HTTP2ClientStream) { onDrained?() }
    func streamClosed(_ stream: HTTP2ClientStream, reason: String) { onClosed?(reason) }
}

/// One permessage-deflate codec per loop (libdeflate's work areas are
/// large; a loop's connections use them one at a time). Each loop touches
/// only its own slot.
final class CodecPool: @unchecked Sendable {
    private var codecs: [PerMessageDeflateCodec?] = Array(repeating: nil, count: 256)

    func codec(on loop: EventLoop) -> PerMessageDeflateCodec {
        if let c = codecs[loop.index] { return c }
        let c = PerMessageDeflateCodec()
        codecs[loop.index] = c
        return c
    }
}

/// Per loop, the HTTP/2 connection new streams go on until it carries
/// `streamsPerConnection`. Each loop touches only its own slot.
final class HTTP2Pool: @unchecked Sendable {
    let streamsPerConnection: Int
    private var current: [HTTP2ClientConnection?] = Array(repeating: nil, count: 256)
    private var opened: [Int] = Array(repeating: 0, count: 256)

    init(streamsPerConnection: Int) {
        self.streamsPerConnection = streamsPerConnection
    }

    func connection(on loop: EventLoop, url: WebSocketURL, source: SocketAddress?, tls: TLSContext?) throws -> HTTP2ClientConnection {
        let i = loop.index
        if let c = current[i], opened[i] < streamsPerConnection, c.failure == nil {
            opened[i] += 1
            return c
        }
        let c = try HTTP2ClientConnection.connect(to: url.address(), authority: "\(url.host):\(url.port)", on: loop, source: source,
                                                  tls: tls, serverName: url.host)
        current[i] = c
        opened[i] = 1
        return c
    }
}
