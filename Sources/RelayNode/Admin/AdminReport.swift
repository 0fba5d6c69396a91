import Synchronization
import Reactor
import Framing

/// /stats (AgentsMesh's four integers) and /metrics (Prometheus text),
/// summed over every loop's counters.
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

    static func metrics(_ hubs: [PodHub], loops: [EventLoop]) -> String {
        func sum(_ f: (RelayCounters) -> Int) -> Int { hubs.reduce(0) { $0 + f($1.counters) } }
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += "\(name)\(labels) \(v)\n" }
        }
        metric("relay_connections", "gauge", "Open WebSocket connections by role.", [
            ("{role=\"runner\"}", sum { $0.runners.load(ordering: .relaxed) }),
            ("{role=\"browser\"}", sum { $0.browsers.load(ordering: .relaxed) }),
        ])
        metric("relay_pods", "gauge", "Pods (channels) held.", [("", sum { $0.pods.load(ordering: .relaxed) })])
        metric("relay_pod_mirrors", "gauge", "Mirrors of pods on loops other than their home (browser placement accept).", [("", sum { $0.mirrors.load(ordering: .relaxed) })])
        metric("relay_frames_in_total", "counter", "Relay frames received from runners and browsers.", [("", sum { $0.framesIn.load(ordering: .relaxed) })])
        metric("relay_bytes_in_total", "counter", "Payload bytes received.", [("", sum { $0.bytesIn.load(ordering: .relaxed) })])
        metric("relay_deliveries_total", "counter", "Runner frames queued to browsers (one per browser).", [("", sum { $0.deliveries.load(ordering: .relaxed) })])
        metric("relay_bytes_out_total", "counter", "Bytes of runner frames queued to browsers.", [("", sum { $0.bytesOut.load(ordering: .relaxed) })])
        metric("relay_dropped_frames_total", "counter", "Replayable frames dropped for lagging browsers.", [("", sum { $0.droppedFrames.load(ordering: .relaxed) })])
        metric("relay_lags_total", "counter", "Times a browser hit its outbound bound.", [("", sum { $0.lags.load(ordering: .relaxed) })])
        metric("relay_refused_input_total", "counter", "Browser frames refused (read-only, or held input full).", [("", sum { $0.refusedInput.load(ordering: .relaxed) })])
        metric("relay_auth_failures_total", "counter", "Upgrades refused with 401.", [("", sum { $0.authFailures.load(ordering: .relaxed) })])
        var codes: [UInt16: Int] = [:]
        for h in hubs { for (c, n) in h.counters.closes.withLock({ $0 }) { codes[c, default: 0] += n } }
        metric("relay_closes_total", "counter", "WebSocket closes by close code.", codes.keys.sorted().map { ("{code=\"\($0)\"}", codes[$0]!) })
        metric("relay_slab_allocations_total", "counter", "Buffers (slabs) allocated: grows per frame, never per subscriber.",
               [("", Slab.allocations.load(ordering: .relaxed))])
        metric("relay_loop_turns_total", "counter", "Event loop turns.", loops.map { ("{loop=\"\($0.index)\"}", Int($0.turns.load(ordering: .relaxed))) })
        metric("relay_loop_busy_microseconds_total", "counter", "Time spent in loop turns (not waiting).", loops.map { ("{loop=\"\($0.index)\"}", Int($0.busyNanos.load(ordering: .relaxed) / 1000)) })
        return out
    }
}
