import Synchronization
import Reactor
import Framing

/// /stats (AgentsMesh's four integers), summed over every loop's counters.
enum AdminReport {
    static func stats(_ hubs: [PodHub]) -> String {
        func sum(_ f: (RelayCounters) -> Int) -> Int64 { Int64(hubs.reduce(0) { $0 + f($1.counters) }) }
        var w = JSONWriter()
        w.beginObject()
        w.key("active_channels"); w.integer(sum { $0.activeChannels.load(ordering: .relaxed) })
        w.key("total_subscribers"); w.integer(sum { $0.totalSubscribers.load(ordering: .relaxed) })
        w.key("pending_publishers"); w.integer(sum { $0.pendingPublishers.load(ordering: .relaxed) })
        w.key("pending_subscribers"); w.integer(sum { $0.pendingSubscribers.load(ordering: .relaxed) })
        w.endObject()
        return w.text
    }
}
