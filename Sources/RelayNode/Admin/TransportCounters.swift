import Synchronization
import Reactor

/// Connections and streams by transport, for /stats, /metrics and log
/// lines: one instance per server, touched once per connection or stream
/// event (never per frame).
///
/// Connections: `h1` (HTTP/1.1, including those upgraded to a WebSocket),
/// `h2c` (HTTP/2 with prior knowledge on the plain port), `h2` (HTTP/2 by
/// ALPN over TLS). Streams: `ws` (a WebSocket over HTTP/1.1),
/// `ws-over-h2` (RFC 8441), `grpc` (an Attach call), `h2-request` (a plain
/// request over HTTP/2).
final class TransportCounters: Sendable {
    enum Connection: Int, CaseIterable, Sendable {
        case h1, h2c, h2
        var name: String { ["h1", "h2c", "h2"][rawValue] }
    }

    enum Stream: Int, CaseIterable, Sendable {
        case ws, wsOverH2, grpc, h2Request
        var name: String { ["ws", "ws-over-h2", "grpc", "h2-request"][rawValue] }
    }

    private final class Slot: Sendable {
        let open = Atomic<Int>(0)
        let total = Atomic<Int>(0)
    }
    private let connections = Connection.allCases.map { _ in Slot() }
    private let streams = Stream.allCases.map { _ in Slot() }
    /// GOAWAYs we sent that ended a connection for a reason, by reason.
    let goaways = Locked<[String: Int]>([:])

    func opened(_ c: Connection) {
        connections[c.rawValue].open.add(1, ordering: .relaxed)
        connections[c.rawValue].total.add(1, ordering: .relaxed)
    }

    func closed(_ c: Connection) { connections[c.rawValue].open.add(-1, ordering: .relaxed) }

    func opened(_ s: Stream) {
        streams[s.rawValue].open.add(1, ordering: .relaxed)
        streams[s.rawValue].total.add(1, ordering: .relaxed)
    }

    func closed(_ s: Stream) { streams[s.rawValue].open.add(-1, ordering: .relaxed) }

    func open(_ c: Connection) -> Int { connections[c.rawValue].open.load(ordering: .relaxed) }
    func total(_ c: Connection) -> Int { connections[c.rawValue].total.load(ordering: .relaxed) }
    func open(_ s: Stream) -> Int { streams[s.rawValue].open.load(ordering: .relaxed) }
    func total(_ s: Stream) -> Int { streams[s.rawValue].total.load(ordering: .relaxed) }

    func goaway(reason: String) { goaways.withLock { $0[reason, default: 0] += 1 } }
}

