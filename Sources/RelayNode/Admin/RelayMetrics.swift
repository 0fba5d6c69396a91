import TLS
import Prometheus
import Reactor

/// `/metrics` through swift-prometheus: the loops' counters (relaxed
/// atomics, one writer each) are summed into the registry's counters and
/// gauges when scraped, and per-connection timings are observed into real
/// histograms as they happen (never per frame: a histogram takes a lock).
final class RelayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Scrapes may come on any loop at once: one updates and emits at a time.
    private let scrape = Locked(())

    /// From accept to a complete request head (upgrade or admin request).
    let handshake: DurationHistogram

    init() {
        handshake = registry.makeDurationHistogram(
            name: "relay_handshake_duration_seconds",
            buckets: [.microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10),
                      .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5)],
            help: "Time from accept to a complete request head.")
    }

    /// The exposition text, with every loop's counters summed in.
    func render(_ hubs: [PodHub], loops: [EventLoop], tls: TLSCounters? = nil, transports: TransportCounters? = nil,
                compression: CompressionCounters? = nil) -> String {
        scrape.withLock { _ in
            func sum(_ f: (RelayCounters) -> Int) -> Int64 { Int64(hubs.reduce(0) { $0 + f($1.counters) }) }
            func gauge(_ name: String, _ help: String, _ value: Int64, labels: [(String, String)] = []) {
                registry.makeGauge(name: name, labels: labels, help: help).set(value)
            }
            func counter(_ name: String, _ help: String, _ value: Int64, labels: [(String, String)] = []) {
                let c = registry.makeCounter(name: name, labels: labels, help: help)
                c.reset()
                c.increment(by: value)
            }
            gauge("relay_connections", "Open WebSocket connections by role.", sum { $0.runners.load(ordering: .relaxed) }, labels: [("role", "runner")])
            gauge("relay_connections", "Open WebSocket connections by role.", sum { $0.browsers.load(ordering: .relaxed) }, labels: [("role", "browser")])
            gauge("relay_pods", "Pods (channels) held.", sum { $0.pods.load(ordering: .relaxed) })
            gauge("relay_pod_mirrors", "Mirrors of pods on loops other than their home (browser placement accept).", sum { $0.mirrors.load(ordering: .relaxed) })
            counter("relay_frames_in_total", "Relay frames received from runners and browsers.", sum { $0.framesIn.load(ordering: .relaxed) })
            counter("relay_bytes_in_total", "Payload bytes received.", sum { $0.bytesIn.load(ordering: .relaxed) })
            counter("relay_deliveries_total", "Runner frames queued to browsers (one per browser).", sum { $0.deliveries.load(ordering: .relaxed) })
            counter("relay_bytes_out_total", "Bytes of runner frames queued to browsers.", sum { $0.bytesOut.load(ordering: .relaxed) })
            counter("relay_dropped_frames_total", "Replayable frames dropped for lagging browsers.", sum { $0.droppedFrames.load(ordering: .relaxed) })
            counter("relay_lags_total", "Times a browser hit its outbound bound (or a pod's link to another loop fell behind).", sum { $0.lags.load(ordering: .relaxed) })
            counter("relay_refused_input_total", "Browser frames refused (read-only, or held input full).", sum { $0.refusedInput.load(ordering: .relaxed) })
            counter("relay_auth_failures_total", "Upgrades refused with 401.", sum { $0.authFailures.load(ordering: .relaxed) })
            var codes: [UInt16: Int] = [:]
            for h in hubs { for (c, n) in h.counters.closes.withLock({ $0 }) { codes[c, default: 0] += n } }
            for (code, n) in codes {
                counter("relay_closes_total", "WebSocket closes by close code.", Int64(n), labels: [("code", "\(code)")])
            }
            counter("relay_slab_allocations_total", "Buffers (slabs) allocated: grows per frame, never per subscriber.",
                    Int64(Slab.allocations.load(ordering: .relaxed)))
            if let tls {
                gauge("relay_tls_connections", "Open TLS connections (handshaking or established).", Int64(tls.open.load(ordering: .relaxed)))
                counter("relay_tls_resumed_total", "TLS handshakes that resumed a session.", Int64(tls.resumed.load(ordering: .relaxed)))
                for (version, n) in tls.versions {
                    counter("relay_tls_handshakes_total", "Completed TLS handshakes by negotiated version.", Int64(n), labels: [("version", version)])
                }
                for (reason, n) in tls.failures {
                    counter("relay_tls_handshake_failures_total", "Failed TLS handshakes by reason (OpenSSL's, or timeout).", Int64(n), labels: [("reason", reason)])
                }
            }
            if let transports {
                for c in TransportCounters.Connection.allCases {
                    gauge("relay_transport_connections", "Open connections by transport (h1, h2c, h2).", Int64(transports.open(c)), labels: [("transport", c.name)])
                    counter("relay_transport_connections_total", "Connections by transport (h1, h2c, h2).", Int64(transports.total(c)), labels: [("transport", c.name)])
                }
                for st in TransportCounters.Stream.allCases {
                    gauge("relay_transport_streams", "Open streams by transport (ws, ws-over-h2, grpc, h2-request).", Int64(transports.open(st)), labels: [("transport", st.name)])
                    counter("relay_transport_streams_total", "Streams by transport (ws, ws-over-h2, grpc, h2-request).", Int64(transports.total(st)), labels: [("transport", st.name)])
                }
                for (reason, n) in transports.goaways.withLock({ $0 }) {
                    counter("relay_http2_goaways_total", "HTTP/2 connections the relay ended with GOAWAY, by reason.", Int64(n), labels: [("reason", reason)])
                }
            }
            if let c = compression {
                gauge("relay_compression_connections", "Open WebSockets that negotiated permessage-deflate.", Int64(c.connections.load(ordering: .relaxed)))
                counter("relay_compressions_total", "Messages compressed (once per message per loop, shared by every compressing subscriber).", Int64(c.compressions.load(ordering: .relaxed)))
                counter("relay_compression_bytes_in_total", "Bytes of the messages compressed, before.", Int64(c.bytesIn.load(ordering: .relaxed)))
                counter("relay_compression_bytes_out_total", "Bytes of the messages compressed, after.", Int64(c.bytesOut.load(ordering: .relaxed)))
            }
            for loop in loops {
                counter("relay_loop_turns_total", "Event loop turns.", Int64(loop.turns.load(ordering: .relaxed)), labels: [("loop", "\(loop.index)")])
                counter("relay_loop_busy_microseconds_total", "Time spent in loop turns (not waiting).",
                        Int64(loop.busyNanos.load(ordering: .relaxed) / 1000), labels: [("loop", "\(loop.index)")])
            }
            return registry.emitToString()
        }
    }
}
