import Glibc
import Framing

/// The result as a table on stdout and, with --json, as a JSON file.
struct Report {
    var fields: [(String, String)] = []       // for the table
    var json = JSONWriter()

    init(scenario: String, options: CommonOptions, parameters: [(String, Int64)], result: RunResult) {
        json.beginObject()
        json.key("scenario"); json.string(scenario)
        json.key("target"); json.string(options.target)
        json.key("transport"); json.string(options.transport)
        json.key("compression"); json.bool(options.compression)
        json.key("url"); json.string(options.url)
        json.key("client_loops"); json.integer(Int64(options.loops))
        for (k, v) in parameters {
            json.key(k); json.integer(v)
            fields.append((k, "\(v)"))
        }
        json.key("ok"); json.bool(result.error == nil)
        if let e = result.error {
            json.key("error"); json.string(e)
            fields.append(("error", e))
        }
        json.key("duration_s"); json.number(result.seconds)
        json.key("sent"); json.integer(Int64(result.sent))
        json.key("delivered"); json.integer(Int64(result.delivered))
        json.key("expected"); json.integer(Int64(result.expected))
        json.key("reach"); json.number(result.reach)
        json.key("deliveries_per_s"); json.number(result.deliveriesPerSecond.rounded())
        json.key("mb_per_s"); json.number((result.megabytesPerSecond * 10).rounded() / 10)
        json.key("latency_us"); json.beginObject()
        let pcts: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)]
        for (k, p) in pcts { json.key(k); json.integer(Int64(result.latency.valueAtPercentile(p))) }
        json.key("max"); json.integer(Int64(result.latency.max))
        json.key("count"); json.integer(Int64(result.latency.totalCount))
        json.endObject()
        // The recorded buckets, so that runs over several processes merge exactly.
        json.key("latency_histogram"); json.beginArray()
        for v in result.latency.recordedValues() {
            json.beginArray(); json.integer(Int64(v.value)); json.integer(Int64(v.count)); json.endArray()
        }
        json.endArray()
        json.key("errors"); json.integer(Int64(result.errors))
        json.key("dropped"); json.integer(Int64(result.dropped))
        json.key("lags"); json.integer(Int64(result.lags))
        func optional(_ k: String, _ v: Double?) {
            json.key(k)
            if let v { json.number((v * 100).rounded() / 100) } else { json.null() }
        }
        optional("client_cpu_percent", result.clientCPUPercent)
        optional("server_cpu_percent", result.serverCPUPercent)
        optional("server_cpu_us_per_delivery", result.serverCPUMicrosPerDelivery)
        json.key("server_rss_bytes")
        if let r = result.serverRSS { json.integer(Int64(r)) } else { json.null() }
        json.endObject()

        let percentiles: String = pcts.map { "\(result.latency.valueAtPercentile($0.1))" }.joined(separator: " / ") + " / \(result.latency.max)"
        let counts = "\(result.errors) / \(result.dropped) / \(result.lags)"
        let reachText = fixed(result.reach * 100, 2)
        fields += [
            ("duration", fixed(result.seconds, 1) + " s"),
            ("sent", "\(result.sent)"),
            ("delivered / expected", "\(result.delivered) / \(result.expected) (reach \(reachText)%)"),
            ("deliveries/s", fixed(result.deliveriesPerSecond)),
            ("MB/s", fixed(result.megabytesPerSecond, 1)),
            ("latency µs p50/p90/p99/p99.9/max", percentiles),
            ("errors / dropped / lags", counts),
            ("client CPU", result.clientCPUPercent.map { fixed($0) + "%" } ?? "-"),
            ("server CPU", result.serverCPUPercent.map { fixed($0) + "%" } ?? "-"),
            ("server CPU µs/delivery", result.serverCPUMicrosPerDelivery.map { fixed($0, 3) } ?? "-"),
            ("server RSS", result.serverRSS.map { fixed(Double($0) / 1048576, 1) + " MiB" } ?? "-"),
        ]
    }

    func print(to jsonPath: String?) {
        let width = fields.map(\.0.count).max() ?? 10
        var out = ""
        for (k, v) in fields { out += k + String(repeating: " ", count: width - k.count) + "  " + v + "\n" }
        _ = out.withCString { Glibc.write(1, $0, strlen($0)) }
        write(to: jsonPath)
    }

    func write(to jsonPath: String?) {
        if let jsonPath, let f = fopen(jsonPath, "w") {
            var bytes = json.bytes + [10]
            fwrite(&bytes, 1, bytes.count, f)
            fclose(f)
        }
    }
}
