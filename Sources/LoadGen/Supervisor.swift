import Glibc
import Histogram
import Framing
import Reactor

/// `--processes N`: one process holds at most ~19,000 sockets (the
/// descriptor limit is 20,000 and cannot be raised), so larger runs split
/// the pods or connections over N worker processes — copies of this one
/// with `--worker-index I` — that connect, wait at a barrier, measure the
/// same window, and report JSON that the parent merges (counters summed,
/// latency histograms merged exactly).
enum Supervisor {
    /// Runs the workers when this process is the parent of a multi-process
    /// run; returns their merged result, or nil when this process should run
    /// the scenario itself.
    static func runWorkersIfParent(_ options: CommonOptions) throws -> RunResult? {
        guard options.processes > 1, options.workerIndex == nil else { return nil }
        let dir = "/tmp/loadgen-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(dir, 0o700)
        defer { removeTree(dir) }
        var args = Array(CommandLine.arguments.dropFirst())
        // The parent's own --json and progress belong to the parent.
        if let i = args.firstIndex(of: "--json"), i + 1 < args.count { args.removeSubrange(i...(i + 1)) }
        var pids: [pid_t] = []
        for w in 0..<options.processes {
            let argv = ["/proc/self/exe"] + args + ["--worker-index", "\(w)", "--barrier", dir, "--json", "\(dir)/\(w).json", "--quiet"]
            var cargs = argv.map { strdup($0) } + [nil]
            defer { for p in cargs { free(p) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, "/proc/self/exe", nil, nil, &cargs, environ)
            if rc != 0 { throw WorkerError("cannot start worker \(w): \(String(cString: strerror(rc)))") }
            pids.append(pid)
        }
        // Barrier: every worker connected, then all start measuring together.
        let deadline = MonotonicClock.seconds() + options.connectTimeout + 10
        while (0..<options.processes).contains(where: { access("\(dir)/ready-\($0)", F_OK) != 0 }) {
            if MonotonicClock.seconds() > deadline || pids.contains(where: { exited($0) }) { break }
            progress(options, "workers connecting")
            usleep(50_000)
        }
        close(open("\(dir)/go", O_CREAT | O_WRONLY, 0o600))
        var results: [JSONValue] = []
        for (w, pid) in pids.enumerated() {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            guard let bytes = FileContents.bytes("\(dir)/\(w).json"), let json = try? JSONParser.parse(bytes) else {
                return RunResult.failed("worker \(w) wrote no result (exit status \(status))")
            }
            results.append(json)
        }
        return merge(results)
    }

    private static func merge(_ workers: [JSONValue]) -> RunResult {
        var r = RunResult()
        func int(_ v: JSONValue, _ k: String) -> Int { Int(v[k]?.numberValue ?? 0) }
        func double(_ v: JSONValue, _ k: String) -> Double? { v[k]?.numberValue }
        for w in workers {
            if r.error == nil, w["ok"]?.boolValue == false { r.error = w["error"]?.stringValue ?? "worker failed" }
            r.seconds = max(r.seconds, double(w, "duration_s") ?? 0)
            r.sent += int(w, "sent")
            r.delivered += int(w, "delivered")
            r.expected += int(w, "expected")
            r.errors += int(w, "errors")
            r.dropped += int(w, "dropped")
            r.lags += int(w, "lags")
            r.deliveriesPerSecond += double(w, "deliveries_per_s") ?? 0
            r.megabytesPerSecond += double(w, "mb_per_s") ?? 0
            if let c = double(w, "client_cpu_percent") { r.clientCPUPercent = (r.clientCPUPercent ?? 0) + c }
            // Every worker saw the same server over the same window: keep one reading.
            if let s = double(w, "server_cpu_percent") { r.serverCPUPercent = max(r.serverCPUPercent ?? 0, s) }
            if let rss = double(w, "server_rss_bytes") { r.serverRSS = max(r.serverRSS ?? 0, UInt64(rss)) }
            if case .array(let buckets)? = w["latency_histogram"] {
                for b in buckets {
                    if case .array(let pair) = b, pair.count == 2, let v = pair[0].numberValue, let c = pair[1].numberValue {
                        _ = r.latency.record(UInt64(v), count: UInt64(c))
                    }
                }
            }
        }
        if let cpu = r.serverCPUPercent, r.deliveriesPerSecond > 0 {
            r.serverCPUMicrosPerDelivery = cpu / 100 * 1e6 / r.deliveriesPerSecond
        }
        return r
    }

    /// Worker side: announce readiness and wait for the parent's go.
    static func barrier(_ options: CommonOptions) {
        guard let dir = options.barrier, let w = options.workerIndex else { return }
        close(open("\(dir)/ready-\(w)", O_CREAT | O_WRONLY, 0o600))
        let deadline = MonotonicClock.seconds() + 120
        while access("\(dir)/go", F_OK) != 0 && MonotonicClock.seconds() < deadline { usleep(5_000) }
    }

    private static func exited(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }

    private static func progress(_ options: CommonOptions, _ s: String) {
        guard !options.quiet else { return }
        let line = "\r\u{1B}[K[\(options.scenarioName) \(options.target)] \(s)"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    private static func removeTree(_ dir: String) {
        guard let d = opendir(dir) else { return }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { unlink("\(dir)/\(name)") }
        }
        closedir(d)
        rmdir(dir)
    }
}

struct WorkerError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension MonotonicClock {
    static func seconds() -> Double { Double(now()) / 1e9 }
}
