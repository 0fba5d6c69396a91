import Synchronization
import Reactor
import Framing
import TLS

/// /stats (AgentsMesh's four integers), summed over every loop's counters.
enum AdminReport {
    static func stats(_ hubs: [PodHub], tls: TLSCounters? = nil, transports: TransportCounters? = nil,
                      compression: CompressionCounters? = nil) -> String {
        func sum(_ f: (RelayCounters) -> Int) -> Int64 { Int64(hubs.reduce(0) { $0 + f($1.counters) }) }
        var w = JSONWriter()
        w.beginObject()
        w.key("active_channels"); w.integer(sum { $0.activeChannels.load(ordering: .relaxed) })
        w.key("total_subscribers"); w.integer(sum { $0.totalSubscribers.load(ordering: .relaxed) })
        w.key("pending_publishers"); w.integer(sum { $0.pendingPublishers.load(ordering: .relaxed) })
        w.key("pending_subscribers"); w.integer(sum { $0.pendingSubscribers.load(ordering: .relaxed) })
        if let tls {
            w.key("tls")
            w.beginObject()
            w.key("connections"); w.integer(Int64(tls.open.load(ordering: .relaxed)))
            w.key("handshakes"); w.integer(Int64(tls.handshakes.load(ordering: .relaxed)))
            w.key("resumed"); w.integer(Int64(tls.resumed.load(ordering: .relaxed)))
            for (name, counts) in [("versions", tls.versions), ("handshake_failures", tls.failures)] {
                w.key(name)
                w.beginObject()
                for (k, n) in counts.sorted(by: { $0.key < $1.key }) { w.key(k); w.integer(Int64(n)) }
                w.endObject()
            }
            w.endObject()
        }
        if let transports {
            w.key("transports")
            w.beginObject()
            func section(_ name: String, _ entries: [(String, Int)]) {
                w.key(name)
                w.beginObject()
                for (k, n) in entries { w.key(k); w.integer(Int64(n)) }
                w.endObject()
            }
            section("connections", TransportCounters.Connection.allCases.map { ($0.name, transports.open($0)) })
            section("connections_total", TransportCounters.Connection.allCases.map { ($0.name, transports.total($0)) })
            section("streams", TransportCounters.Stream.allCases.map { ($0.name, transports.open($0)) })
            section("streams_total", TransportCounters.Stream.allCases.map { ($0.name, transports.total($0)) })
            section("goaways", transports.goaways.withLock { $0 }.sorted { $0.key < $1.key })
            w.endObject()
        }
        if let c = compression {
            w.key("compression")
            w.beginObject()
            w.key("connections"); w.integer(Int64(c.connections.load(ordering: .relaxed)))
            w.key("compressions"); w.integer(Int64(c.compressions.load(ordering: .relaxed)))
            w.key("bytes_in"); w.integer(Int64(c.bytesIn.load(ordering: .relaxed)))
            w.key("bytes_out"); w.integer(Int64(c.bytesOut.load(ordering: .relaxed)))
            w.endObject()
        }
        w.endObject()
        return w.text
    }
}
