#!/usr/bin/env python3
"""The HTTP/2 section of compare.py (`compare.py --http2 [--reps N] [--quick]`).

One run on loopback, everything interleaved (each repetition reverses and
rotates the order), medians of --reps:
1. fan-out 1 pod → 100 subscribers, 128 B frames, `loadgen fanout --max` at
   windows 32 and 1000: relay ws (100 TCP connections), relay h2c with 100
   streams per connection and with 10, relay gRPC (relay.v1.Relay/Attach over
   h2c), relay wss and relay h2 (TLS, ALPN h2) on a second relay with --tls,
   and nats-server's WebSocket listener;
2. `loadgen echo` over ws, h2c and gRPC (gRPC only if the relay answers
   it: the echo endpoint is a WebSocket path, so a probe decides);
3. `h2load` GET /health over h2c (prior knowledge) against the relay and
   against nghttpd (--no-tls, one worker and two) serving the same 15-byte
   body from a temporary docroot.
Writes Benchmarks/results/<date>-http2.md, <date>-http2.png (deliveries/s
per transport and window) and <date>-http2-h2load.png.

    .venv/bin/python Benchmarks/http2bench.py --report-from STATE.pickle
writes the report again from a run's saved measurements.
"""
import argparse, datetime, hashlib, json, os, pickle, re, shutil, signal, ssl, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402
from benchlib import free_port, logger, wait_port  # noqa: E402

log = logger("http2")

WINDOWS = (32, 1000)
HEALTH_BODY = b'{"status":"ok"}'

# Fan-out variants: (key, label, server, loadgen arguments, TLS, what the client opens).
FANOUT = (
    ("ws", "relay ws", "relay", ["--transport", "ws"], False,
     "101 TCP connections, WebSocket over HTTP/1.1"),
    ("h2c-100", "relay h2c, 100 streams/conn", "relay", ["--transport", "h2c", "--streams-per-connection", "100"], False,
     "WebSockets over HTTP/2 (RFC 8441), prior knowledge: the publisher and 99 subscribers on one connection, "
     "the 100th subscriber on a second"),
    ("h2c-10", "relay h2c, 10 streams/conn", "relay", ["--transport", "h2c", "--streams-per-connection", "10"], False,
     "the same, 10 streams per connection: 11 connections (the publisher and 9 subscribers, 9 × 10, 1)"),
    ("grpc", "relay gRPC (h2c), 100 streams/conn", "relay", ["--transport", "grpc", "--streams-per-connection", "100"], False,
     "relay.v1.Relay/Attach calls over h2c, 100 per connection: 2 connections, as h2c"),
    ("grpc-10", "relay gRPC (h2c), 10 streams/conn", "relay", ["--transport", "grpc", "--streams-per-connection", "10"], False,
     "relay.v1.Relay/Attach calls over h2c, 10 per connection: 11 connections, as h2c-10"),
    ("wss", "relay wss", "relay-tls", ["--transport", "ws"], True,
     "101 TLS connections, WebSocket over HTTP/1.1 (the TLS section's wss://)"),
    ("h2", "relay h2 (TLS), 100 streams/conn", "relay-tls", ["--transport", "h2", "--streams-per-connection", "100"], True,
     "WebSockets over HTTP/2 over TLS (ALPN h2), 100 per connection: 2 connections, as h2c"),
    ("nats-ws", "nats-server ws", "nats", [], False,
     "101 TCP connections to nats-server's WebSocket listener"),
)
# Ratios the issue sets targets for: (numerator, denominator, target).
TARGETS = (("h2c-100", "ws", 0.8), ("h2c-10", "ws", 0.8), ("grpc", "ws", 0.7), ("grpc-10", "ws", 0.7))
# Further ratios shown beside them, without a target.
RATIOS = (("h2", "wss"), ("h2", "h2c-100"), ("wss", "ws"), ("h2c-100", "nats-ws"))

ECHO = (
    ("ws", "relay ws", ["--transport", "ws"], "100 TCP connections"),
    ("h2c", "relay h2c, 100 streams/conn", ["--transport", "h2c", "--streams-per-connection", "100"],
     "100 RFC 8441 streams; loadgen's 2 loops each open their own connection: 2 connections of 50"),
    ("grpc", "relay gRPC (h2c), 100 streams/conn", ["--transport", "grpc", "--streams-per-connection", "100"],
     "100 Attach calls on 2 connections"),
)
ECHO_ARGS = ["--connections", "100", "--size", "512", "--window", "1"]

H2LOAD = (("relay", "relay (2 loops)"), ("nghttpd-1", "nghttpd (1 worker, its default)"), ("nghttpd-2", "nghttpd -n 2 (2 workers)"))
H2LOAD_TARGET = 1.0


# MARK: measuring

def proc_stat():
    """Machine-wide CPU seconds so far: (user + nice + system, nice, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2]) / hz, v[1] / hz, (v[7] if len(v) > 7 else 0) / hz


class Meter:
    """Around one measured run: wall time, the server's CPU, the CPU of the
    client processes run and waited for meanwhile (os.times children), and
    what the rest of the machine used (user + system of everything, less
    those two: other processes, e.g. a test suite running beside)."""

    def __init__(self, pid):
        self.pid = pid
        self.t0 = time.time()
        self.busy0, self.nice0, self.steal0 = proc_stat()
        c = os.times()
        self.child0 = c.children_user + c.children_system
        self.srv0 = C.cpu_seconds(pid)

    def done(self):
        wall = time.time() - self.t0
        busy, nice, steal = proc_stat()
        c = os.times()
        client = c.children_user + c.children_system - self.child0
        srv = C.cpu_seconds(self.pid) - self.srv0
        return {"wall_s": wall, "server_cpu_s": srv, "client_cpu_s": client,
                "other_cpu_cores": max(0.0, (busy - self.busy0 - srv - client) / wall),
                # Of which niced processes (a fuzzer at nice 10 yields to the benchmark).
                "other_nice_cores": (nice - self.nice0) / wall,
                "steal_cores": (steal - self.steal0) / wall}


def relay_metrics(port, tls):
    """The relay's /metrics counters as {name{labels}: value} (None if unreachable)."""
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"{'https' if tls else 'http'}://127.0.0.1:{port}/metrics", timeout=20, context=ctx) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


METRIC_DELTAS = {
    "deliveries": "relay_deliveries_total", "frames_in": "relay_frames_in_total",
    "lags": "relay_lags_total", "dropped": "relay_dropped_frames_total", "auth_failures": "relay_auth_failures_total",
    "h2c_connections": 'relay_transport_connections_total{transport="h2c"}',
    "h2_connections": 'relay_transport_connections_total{transport="h2"}',
    "ws_streams": 'relay_transport_streams_total{transport="ws"}',
    "ws_over_h2_streams": 'relay_transport_streams_total{transport="ws-over-h2"}',
    "grpc_streams": 'relay_transport_streams_total{transport="grpc"}',
    "h2_requests": 'relay_transport_streams_total{transport="h2-request"}',
    "loop0_busy_us": 'relay_loop_busy_microseconds_total{loop="0"}',
    "loop1_busy_us": 'relay_loop_busy_microseconds_total{loop="1"}',
}


def metric_deltas(before, after):
    if before is None or after is None:
        return None
    d = {k: after.get(m, 0) - before.get(m, 0) for k, m in METRIC_DELTAS.items()}
    d.update({k: v - before.get(k, 0) for k, v in after.items() if k.startswith("relay_transport_goaways")})
    return d


class Servers:
    """The relay (plain and --tls), nats-server and the nghttpds, side by side;
    a relay that died is noted and started again."""

    def __init__(self, tmp, cert, key):
        self.tmp, self.cert, self.key = tmp, cert, key
        self.procs = {}
        self.deaths = []
        self.logs = {}

    def start(self, name):
        if name in ("relay", "relay-tls"):
            extra = ["--tls", "--tls-cert", self.cert, "--tls-key", self.key] if name == "relay-tls" else []
            path = os.path.join(self.tmp, f"{name}.log")
            self.logs.setdefault(name, []).append(path)
            f = open(path, "a")
            p, port = C.start_relay(extra, stderr=f)
            f.close()
        elif name == "nats":
            p, port = C.start_nats(self.tmp)
        else:
            workers = name.split("-")[1]
            docroot = os.path.join(self.tmp, "docroot")
            os.makedirs(docroot, exist_ok=True)
            with open(os.path.join(docroot, "health"), "wb") as f:
                f.write(HEALTH_BODY)
            port = free_port()
            p = subprocess.Popen(["nghttpd", "--no-tls", "-a", "127.0.0.1", "-d", docroot, "-n", workers, str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            wait_port(port)
        self.procs[name] = (p, port)
        return p, port

    def get(self, name, what):
        """(process, port), started again (and the death noted) if it exited."""
        p, port = self.procs[name]
        if p.poll() is not None:
            self.deaths.append({"server": name, "exit": p.returncode, "after": what})
            log(f"!! {name} (pid {p.pid}) exited with {p.returncode} after {what}: starting it again")
            return self.start(name)
        return p, port

    def stop(self):
        for p, _ in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)


def run_fanout(servers, key, w, d, tmp, k, total, what):
    _, label, srv, args, tls, _ = next(v for v in FANOUT if v[0] == key)
    p, port = servers.get(srv, what)
    is_relay = srv.startswith("relay")
    before = relay_metrics(port, tls) if is_relay else None
    m = Meter(p.pid)
    r = C.loadgen("fanout", srv, port, p.pid, ["--pods", "1", "--subscribers", "100", "--size", "128", "--max",
                                               "--window", str(w)] + args, d, tmp, ca_file=servers.cert if tls else None)
    r["meter"] = m.done()
    if is_relay:
        r["relay_metrics"] = metric_deltas(before, relay_metrics(port, tls))
    r.pop("latency_histogram", None)
    lt = r.get("latency_us", {})
    log(f"[{k}/{total}] {what} {label}: {r.get('deliveries_per_s', 0) / 1e6:.2f} M deliveries/s, p50/p99 "
        f"{lt.get('p50', '-')}/{lt.get('p99', '-')} µs, server CPU {r.get('server_cpu_us_per_delivery', '-')} µs/delivery, "
        f"others {r['meter']['other_cpu_cores']:.2f} cores"
        + ("" if r.get("ok", True) else f" FAILED: {r.get('error', '')[:200]}"))
    return r


def run_echo(servers, key, d, tmp, k, total, what, duration=None):
    _, label, args, _ = next(v for v in ECHO if v[0] == key)
    p, port = servers.get("relay", what)
    before = relay_metrics(port, False)
    m = Meter(p.pid)
    r = C.loadgen("echo", "relay", port, p.pid, ECHO_ARGS + args, duration or d, tmp)
    r["meter"] = m.done()
    r["relay_metrics"] = metric_deltas(before, relay_metrics(port, False))
    r.pop("latency_histogram", None)
    lt = r.get("latency_us", {})
    log(f"[{k}/{total}] {what} {label}: {r.get('deliveries_per_s', 0):,.0f} round trips/s, p50/p99 "
        f"{lt.get('p50', '-')}/{lt.get('p99', '-')} µs" + ("" if r.get("ok", True) else f" FAILED: {r.get('error', '')[:200]}"))
    return r


def h2load(servers, name, n, k, total, what):
    p, port = servers.get(name, what)
    before = relay_metrics(port, False) if name == "relay" else None
    cmd = ["h2load", "-n", str(n), "-c", "10", "-m", "10", f"http://127.0.0.1:{port}/health"]
    log(" ".join(cmd[:-1]) + f" http://127.0.0.1:PORT/health  ({name})")
    m = Meter(p.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    met = m.done()
    r = {"meter": met, "cmd": " ".join(cmd[:-1])}
    mm = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    if mm:
        r["seconds"] = float(mm.group(1)) / (1000 if mm.group(2) == "ms" else 1)
        r["req_per_s"] = float(mm.group(3))
    mm = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    if mm:
        r.update(total=int(mm.group(1)), done=int(mm.group(2)), succeeded=int(mm.group(3)), failed=int(mm.group(4)),
                 errored=int(mm.group(5)), timeout=int(mm.group(6)))
    mm = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if mm:
        r["status_2xx"], r["status_other"] = int(mm.group(1)), sum(int(mm.group(i)) for i in (2, 3, 4))
    mm = re.search(r"\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data", out)
    if mm:
        r["bytes_total"], r["bytes_headers"], r["bytes_data"] = (int(mm.group(i)) for i in (1, 2, 3))
    mm = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if mm:
        r["request_min"], r["request_max"], r["request_mean"] = mm.group(1), mm.group(2), mm.group(3)
    if r.get("succeeded"):
        r["server_cpu_us_per_request"] = 1e6 * met["server_cpu_s"] / r["succeeded"]
        # Over h2load's own span (the server is idle before and after it).
        r["server_cpu_percent"] = 100 * met["server_cpu_s"] / (r.get("seconds") or met["wall_s"])
    if not mm or "req_per_s" not in r:
        r["error"] = out[-500:]
    if before is not None:
        r["relay_metrics"] = metric_deltas(before, relay_metrics(port, False))
    log(f"[{k}/{total}] {what} {name}: {r.get('req_per_s', 0):,.0f} req/s, {r.get('failed', '?')} failed, server CPU "
        f"{r.get('server_cpu_percent', 0):.0f}% = {r.get('server_cpu_us_per_request', 0):.2f} µs/request")
    return r


def order(items, i):
    """Repetition i's order: rotated by i, reversed on odd repetitions."""
    items = list(items)
    k = i % len(items)
    items = items[k:] + items[:k]
    return items[::-1] if i % 2 else items


def ensure_nghttpd():
    if shutil.which("nghttpd"):
        return
    log("installing nghttpd (apt: nghttp2-server)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "nghttp2-server"], check=True, env=env, stdout=subprocess.DEVNULL)


def binary_info(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return {"path": path, "mtime": datetime.datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M"), "sha256": digest}


def main(opts, d):
    reps = opts.reps or (1 if opts.quick else 3)
    # Long enough (3-6 s) that a burst of other work on the machine is a small part of a run.
    n_h2load = 100_000 if opts.quick else 600_000
    if not shutil.which("h2load"):
        sys.exit("missing h2load: apt-get install nghttp2-client (scripts/setup.sh installs it)")
    ensure_nghttpd()
    started = time.time()
    log("measuring how many cores the machine really gives")
    m = C.machine()
    m["commit"] = C.git_describe()
    m["load_before"] = os.getloadavg()
    mt = Meter(os.getpid())
    time.sleep(2)
    m["others_before"] = mt.done()
    if m["others_before"]["other_cpu_cores"] > 0.25:
        log(f"!! the machine is not quiet: other processes use {m['others_before']['other_cpu_cores']:.2f} cores "
            f"(niced: {m['others_before']['other_nice_cores']:.2f}); the figures will be lower and noisier")
    m["binaries"] = {"relay": binary_info(C.RELAY), "loadgen": binary_info(C.LOADGEN)}
    tmp = tempfile.mkdtemp(prefix="compare-http2-")
    cert, key = C.make_cert(tmp)
    log(f"self-signed ECDSA P-256 certificate for 127.0.0.1 in {tmp}")
    servers = Servers(tmp, cert, key)
    fan, echo, h2 = {}, {}, {}
    probe = None
    try:
        for name in ("relay", "relay-tls", "nats", "nghttpd-1", "nghttpd-2"):
            servers.start(name)
        # Is echo over gRPC served? The relay's echo endpoint is the WebSocket path
        # /test/echo; gRPC has only Attach. One short try decides.
        probe = run_echo(servers, "grpc", d, tmp, 0, 0, "probe: echo over gRPC", duration=1)
        echo_keys = [e[0] for e in ECHO if e[0] != "grpc" or probe.get("ok") and probe.get("delivered")]
        if "grpc" not in echo_keys:
            log(f"echo over gRPC is not served: {probe.get('error', '')[:200]} (left out of the echo runs)")

        total = reps * len(WINDOWS) * len(FANOUT)
        k = 0
        for i in range(reps):
            for j, w in enumerate(WINDOWS):
                for key in order([v[0] for v in FANOUT], i + j):
                    k += 1
                    fan.setdefault((key, w), []).append(
                        run_fanout(servers, key, w, d, tmp, k, total, f"rep {i + 1}/{reps} fan-out 1→100 window {w}"))
        total = reps * len(echo_keys)
        k = 0
        for i in range(reps):
            for key in order(echo_keys, i):
                k += 1
                echo.setdefault(key, []).append(run_echo(servers, key, d, tmp, k, total, f"rep {i + 1}/{reps} echo"))
        total = reps * len(H2LOAD)
        k = 0
        for i in range(reps):
            for name in order([h[0] for h in H2LOAD], i):
                k += 1
                h2.setdefault(name, []).append(h2load(servers, name, n_h2load, k, total, f"rep {i + 1}/{reps} h2load"))
    finally:
        servers.stop()
    m["load_after"] = os.getloadavg()
    m["binaries_after"] = {"relay": binary_info(C.RELAY), "loadgen": binary_info(C.LOADGEN)}
    elapsed = time.time() - started
    logs = {}
    for name, paths in servers.logs.items():
        lines = []
        for path in paths:
            with open(path, errors="replace") as f:
                lines += f.read().splitlines()
        logs[name] = lines
    state = {"fan": fan, "echo": echo, "h2": h2, "probe": probe, "m": m, "elapsed": elapsed, "reps": reps, "d": d,
             "n_h2load": n_h2load, "quick": opts.quick, "argv": sys.argv, "deaths": servers.deaths, "logs": logs,
             "tmp": tmp, "env": {k: os.environ[k] for k in ("RELAY_BIN", "LOADGEN_BIN") if os.environ.get(k)},
             "versions": versions()}
    path = os.path.join(tmp, "http2-state.pickle")
    with open(path, "wb") as f:
        pickle.dump(state, f)
    log(f"measurements saved in {path} (Benchmarks/http2bench.py --report-from {path} writes the report again)")
    write_http2_report(state)


def versions():
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {"nats": C.nats_version(), "h2load": first(["h2load", "--version"]),
            "nghttpd": first(["dpkg-query", "-W", "-f", "${Version}", "nghttp2-server"]),
            "openssl": first(["openssl", "version"])}


# MARK: report

def rate(r):
    return r.get("deliveries_per_s") if r.get("ok", True) else None


def cpu_per(r):
    """The server's CPU µs per delivery (or round trip) from loadgen's server CPU % over the measured
    seconds and its rate (loadgen's own figure is rounded to 0.01 µs: too coarse at window 1000)."""
    if not r.get("ok", True) or not r.get("deliveries_per_s") or r.get("server_cpu_percent") is None:
        return r.get("server_cpu_us_per_delivery")
    return r["server_cpu_percent"] * 1e4 / r["deliveries_per_s"]


def client_per(r):
    """loadgen's CPU µs per delivery (or round trip)."""
    if not r.get("ok", True) or not r.get("deliveries_per_s") or r.get("client_cpu_percent") is None:
        return None
    return r["client_cpu_percent"] * 1e4 / r["deliveries_per_s"]


def paired(a, b):
    """Median over repetitions of a's rate ÷ b's rate in the same repetition."""
    return C.med([rate(x) / rate(y) for x, y in zip(a, b) if rate(x) and rate(y)])


def loops_busy(rs):
    """'busiest / other' relay loop busy % (medians over runs; /metrics loop busy time over the run's wall time)."""
    hi, lo = [], []
    for r in rs:
        x, mt = r.get("relay_metrics"), r.get("meter")
        if x and mt:
            a, b = (100 * x["loop0_busy_us"] / 1e6 / mt["wall_s"], 100 * x["loop1_busy_us"] / 1e6 / mt["wall_s"])
            hi.append(max(a, b))
            lo.append(min(a, b))
    return f"{C.fmt(C.med(hi))}% / {C.fmt(C.med(lo))}%" if hi else "-"


def write_http2_report(s):
    fan, echo, h2, probe, m = s["fan"], s["echo"], s["h2"], s["probe"], s["m"]
    reps, d, quick = s["reps"], s["d"], s["quick"]
    med, fmt = C.med, C.fmt
    date = datetime.date.today().isoformat()
    base = os.path.join(C.ROOT, "Benchmarks", "results", f"{date}-http2" + ("-quick" if quick else ""))
    env = " ".join(f"{k}={v}" for k, v in s["env"].items())
    command = (env + " " if env else "") + ".venv/bin/python Benchmarks/compare.py " + " ".join(s["argv"][1:])
    v = s["versions"]
    b = m["binaries"]
    others = [r["meter"]["other_cpu_cores"] for rs in list(fan.values()) + list(echo.values()) for r in rs]
    nices = [r["meter"].get("other_nice_cores", 0) for rs in list(fan.values()) + list(echo.values()) for r in rs]
    lines = [f"# HTTP/2: WebSockets over h2c and h2, gRPC, and h2load, relay against nats-server and nghttpd, {date}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']} (host {m['host']}); two CPU-bound processes "
             f"together get {m['effective_cores']} cores' worth of time (the servers, `loadgen` and `h2load` share it). "
             f"Load average {m['load_before'][0]:.2f} before the run and {m['load_after'][0]:.2f} after; other processes "
             f"used a median of {fmt(med(others), 2)} cores (max {fmt(max(others) if others else None, 2)}; of which niced "
             f"processes, which yield to the benchmark, {fmt(med(nices), 2)}) during the `loadgen` runs (machine-wide "
             f"user + nice + system less the server's and the client's, per run in the raw JSON)."
             + (f" **The machine was not quiet:** other processes used {fmt(med(others), 2)} cores during the runs "
                f"(2 s before the run: {m.get('others_before', {}).get('other_cpu_cores', 0):.2f}), so the absolute figures are lower "
                f"and noisier than on an idle machine; the ratios of paired runs are the figures to read."
                if (med(others) or 0) > 0.25 else ""),
             f"Relay source: commit {m['commit']}. Binaries: relay `{b['relay']['path']}` ({b['relay']['mtime']}, "
             f"sha256 {b['relay']['sha256']}…), loadgen `{b['loadgen']['path']}` ({b['loadgen']['mtime']}, "
             f"sha256 {b['loadgen']['sha256']}…). nats-server {v['nats']}; {v['h2load']}; nghttpd (nghttp2-server) "
             f"{v['nghttpd']}; {v['openssl']}.", "",
             f"Command (whole run {s['elapsed'] / 60:.1f} min):", "", "```", command, "```", "",
             f"Every figure is the median of {reps} interleaved repetition{'s' if reps > 1 else ''} (each repetition "
             f"rotates the order of the variants and reverses it every other time); each `loadgen` run is {d} s after "
             f"1 s of warm-up. Two relays (plain: ws and h2c on one port; `--tls`: wss and h2 by ALPN on another, a "
             f"self-signed ECDSA P-256 certificate that `loadgen` verifies with `--ca-file`), nats-server and two "
             f"nghttpds run side by side, idle when not measured. The relays run with their defaults (2 loops, "
             f"`--browser-placement home`, `--http2-max-streams 128`) and `--max-browsers-per-pod 100000`.", ""]
    # Targets first.
    tline = []
    for num, den, target in TARGETS:
        parts = []
        for w in WINDOWS:
            r = paired(fan.get((num, w), []), fan.get((den, w), []))
            parts.append(f"window {w}: {fmt(r, 2)}× ({'met' if r is not None and r >= target else 'not met'})")
        tline.append(f"- **{num} ÷ {den} ≥ {target}**: " + "; ".join(parts) + ".")
    hr = {}
    for name in ("nghttpd-1", "nghttpd-2"):
        hr[name] = C.med([x.get("req_per_s", 0) / y["req_per_s"] for x, y in zip(h2.get("relay", []), h2.get(name, []))
                          if y.get("req_per_s") and x.get("req_per_s")])
    tline.append(f"- **h2load GET /health, relay ÷ nghttpd ≥ {H2LOAD_TARGET}**: against nghttpd with its default one "
                 f"worker {fmt(hr['nghttpd-1'], 2)}× ({'met' if (hr['nghttpd-1'] or 0) >= H2LOAD_TARGET else 'not met'}); "
                 f"against nghttpd -n 2 (as many threads as the relay's loops) {fmt(hr['nghttpd-2'], 2)}× "
                 f"({'met' if (hr['nghttpd-2'] or 0) >= H2LOAD_TARGET else 'not met'}).")
    lines += ["## Targets", "", "Ratios are medians of the ratios of paired runs (the same repetition and window).", ""] + tline + [""]

    # Part 1.
    lines += ["## 1. Fan-out 1→100, 128 B frames, closed loop (`loadgen fanout --pods 1 --subscribers 100 --size 128 --max --window W`)", "",
              "What each variant opens (one pod lives on one `loadgen` loop, so an HTTP/2 connection's streams are "
              "filled in order: the publisher and the subscribers share them):", ""]
    for key, label, srv, args, tls, what in FANOUT:
        lines.append(f"- **{label}** (`{' '.join(args) or '--target nats'}`{', wss:// URL, --ca-file' if tls else ''}): {what}.")
    lines += ["", "| variant | window | deliveries/s | ÷ relay ws (paired) | p50/p99 µs | p99.9 µs | server CPU µs/delivery | "
              "loadgen CPU (µs/delivery) | relay loops busy (busiest / other) | relay: HTTP/2 conns, streams | errors / drops / lags | runs (M/s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in WINDOWS:
        for key, label, srv, args, tls, _ in FANOUT:
            rs = fan.get((key, w), [])
            if not rs:
                continue
            ra = med([rate(r) for r in rs])
            ratio = paired(rs, fan.get(("ws", w), [])) if key != "ws" else None
            lt = {p: med([r.get("latency_us", {}).get(p) for r in rs if r.get("ok", True)]) for p in ("p50", "p99", "p999")}
            fails = sum(1 for r in rs if not r.get("ok", True))
            conns = streams = "-"
            mets = [r.get("relay_metrics") for r in rs if r.get("relay_metrics")]
            if mets:
                conns = fmt(med([x["h2c_connections"] + x["h2_connections"] for x in mets]))
                streams = fmt(med([x["ws_streams"] + x["ws_over_h2_streams"] + x["grpc_streams"] for x in mets]))
            err = (f"{sum(r.get('errors', 0) for r in rs)} / {sum(r.get('dropped', 0) for r in rs)} / "
                   f"{sum(r.get('lags', 0) for r in rs)}")
            lines.append(f"| {label}{f' ({fails} failed runs)' if fails else ''} | {w} | {fmt(ra)} | "
                         f"{(fmt(ratio, 2) + '×') if ratio else '-'} | {fmt(lt['p50'])}/{fmt(lt['p99'])} | {fmt(lt['p999'])} | "
                         f"{fmt(med([cpu_per(r) for r in rs]), 3)} | "
                         f"{fmt(med([r.get('client_cpu_percent') for r in rs]))}% ({fmt(med([client_per(r) for r in rs]), 3)}) | "
                         f"{loops_busy(rs)} | {conns}, {streams} | {err} | "
                         f"{', '.join(f'{(rate(r) or 0) / 1e6:.2f}' for r in rs)} |")
    def cpu_ratio(num, den, w):
        """The relay's CPU per delivery, den ÷ num (above 1: num costs the server less per delivery)."""
        a = med([cpu_per(r) for r in fan.get((num, w), [])])
        b = med([cpu_per(r) for r in fan.get((den, w), [])])
        return f"{b / a:.2f}×" if a and b else "-"

    lines += ["", "Ratios of paired runs (median over repetitions), and beside them the ratio of the servers' CPU per "
              "delivery (denominator's ÷ numerator's: what the ratio of deliveries/s would be if the server's CPU "
              "were the only bound):", "",
              "| ratio | " + " | ".join(f"window {w}" for w in WINDOWS) + " | " +
              " | ".join(f"server CPU per delivery, window {w}" for w in WINDOWS) + " | target |",
              "|---|" + "---|" * (2 * len(WINDOWS)) + "---|"]
    for num, den, target in TARGETS:
        lines.append(f"| {num} ÷ {den} | " + " | ".join(f"{fmt(paired(fan.get((num, w), []), fan.get((den, w), [])), 2)}×" for w in WINDOWS)
                     + " | " + " | ".join(cpu_ratio(num, den, w) for w in WINDOWS) + f" | ≥ {target} |")
    for num, den in RATIOS:
        lines.append(f"| {num} ÷ {den} | " + " | ".join(f"{fmt(paired(fan.get((num, w), []), fan.get((den, w), [])), 2)}×" for w in WINDOWS)
                     + " | " + " | ".join(cpu_ratio(num, den, w) for w in WINDOWS) + " | - |")
    lines += ["", "Server CPU per delivery is the server process's user + system time over the measured seconds "
              "(`loadgen --server-pid`: its server CPU %) over the deliveries in them; loadgen CPU is the client process's, in % of one core (one pod runs on one of "
              "loadgen's loops, so near 100% its loop is saturated), and per delivery. "
              "\"relay: HTTP/2 conns, streams\" is the change in the relay's own /metrics over the run "
              "(`relay_transport_connections_total` h2c + h2, `relay_transport_streams_total` ws + ws-over-h2 + grpc): "
              "the connections and streams the relay saw. Relay loops busy: `relay_loop_busy_microseconds_total` of each of "
              "its two loops over the run's wall time (connect, warm-up and measured seconds), the busier first: a "
              "WebSocket browser moves to its pod's home loop, while an HTTP/2 connection stays on the loop that "
              "accepted it, its browser streams joining that loop's mirror of the pod and a runner stream whose pod "
              "is homed elsewhere going through a bridge to it: both loops work then, or one, depending on where "
              "the run's pod hashed to. Errors, drops and lags are loadgen's (summed over the runs).", ""]

    # Part 2.
    lines += [f"## 2. Echo (`loadgen echo {' '.join(ECHO_ARGS)}`): round trips on 100 clients, one message in flight each", ""]
    for key, label, args, what in ECHO:
        if key in echo:
            lines.append(f"- **{label}** (`{' '.join(args)}`): {what}.")
    lines += ["", "| transport | round trips/s | ÷ relay ws (paired) | p50/p99 µs | p99.9 µs | server CPU µs/round trip | "
              "loadgen CPU | relay loops busy (busiest / other) | relay: HTTP/2 conns, streams | errors | runs |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, label, args, _ in ECHO:
        rs = echo.get(key)
        if not rs:
            continue
        ratio = paired(rs, echo.get("ws", [])) if key != "ws" else None
        lt = {p: med([r.get("latency_us", {}).get(p) for r in rs if r.get("ok", True)]) for p in ("p50", "p99", "p999")}
        mets = [r.get("relay_metrics") for r in rs if r.get("relay_metrics")]
        cs = (f"{fmt(med([x['h2c_connections'] for x in mets]))}, "
              f"{fmt(med([x['ws_streams'] + x['ws_over_h2_streams'] + x['grpc_streams'] for x in mets]))}") if mets else "-"
        fails = sum(1 for r in rs if not r.get("ok", True))
        lines.append(f"| {label}{f' ({fails} failed runs)' if fails else ''} | {fmt(med([rate(r) for r in rs]))} | "
                     f"{(fmt(ratio, 2) + '×') if ratio else '-'} | {fmt(lt['p50'])}/{fmt(lt['p99'])} | {fmt(lt['p999'])} | "
                     f"{fmt(med([cpu_per(r) for r in rs]), 3)} | "
                     f"{fmt(med([r.get('client_cpu_percent') for r in rs]))}% | {loops_busy(rs)} | {cs} | {sum(r.get('errors', 0) for r in rs)} | "
                     f"{', '.join(fmt(rate(r) or 0) for r in rs)} |")
    if "grpc" not in echo and probe is not None:
        lines += ["", "**gRPC is left out of echo: the relay does not serve it.** The echo endpoint is the WebSocket "
                  "path `/test/echo` (`--echo-endpoint`), and the relay's gRPC service has only "
                  "`relay.v1.Relay/Attach`, which joins a pod with a token. A 1 s probe of "
                  "`loadgen echo --transport grpc` at the start of the run got: "
                  f"`{(probe.get('error') or '').splitlines()[0][:200] if probe.get('error') else 'no error'}`."]
    lines.append("")

    # Part 3.
    hs = h2
    cmd = next((r["cmd"] for rs in hs.values() for r in rs if r.get("cmd")), "h2load")
    lines += [f"## 3. `{cmd} http://127.0.0.1:PORT/health` (h2c, prior knowledge)", "",
              "10 connections, 10 requests in flight on each, one h2load thread. The relay answers its own `GET "
              "/health` (`{\"status\":\"ok\"}`, 15 bytes, `content-type: application/json`, `content-length`); "
              "nghttpd (`nghttpd --no-tls -a 127.0.0.1 -d DOCROOT -n N PORT`) serves a file `health` with the same "
              "15 bytes from a temporary docroot and adds `server`, `date`, `cache-control` and `last-modified` "
              "headers. Server CPU is user + system over h2load's run (% of one core). The relay's loops share its "
              "port with SO_REUSEPORT, so the kernel's hash of each connection's addresses decides which loop serves "
              "it: 10 connections split unevenly and differently from run to run (the loops column, from the relay's "
              "/metrics over the run); nghttpd -n 2 hands connections to its workers in turn.", "",
              "| server | requests/s | relay ÷ this (paired) | server CPU % | server CPU µs/request | relay loops busy (busiest / other) | "
              "h2load mean time per request | succeeded / failed | body bytes / request | runs (req/s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label in H2LOAD:
        rs = hs.get(name)
        if not rs:
            continue
        ratio = hr.get(name)
        body = med([r["bytes_data"] / r["succeeded"] for r in rs if r.get("succeeded") and "bytes_data" in r])
        lines.append(f"| {label} | {fmt(med([r.get('req_per_s') for r in rs]))} | {(fmt(ratio, 2) + '×') if ratio else '-'} | "
                     f"{fmt(med([r.get('server_cpu_percent') for r in rs]))}% | "
                     f"{fmt(med([r.get('server_cpu_us_per_request') for r in rs]), 2)} | {loops_busy(rs)} | "
                     f"{', '.join(r.get('request_mean', '-') for r in rs)} | "
                     f"{sum(r.get('succeeded', 0) for r in rs):,} / {sum(r.get('failed', 0) + r.get('errored', 0) + r.get('timeout', 0) for r in rs):,} | "
                     f"{fmt(body, 1)} | {', '.join(fmt(r.get('req_per_s')) for r in rs)} |")
    lines.append("")

    # What looked odd: found by the script.
    odd = []
    after = m.get("binaries_after")
    if after and any(after[x]["sha256"] != m["binaries"][x]["sha256"] for x in after):
        odd.append("- **The binaries changed during the run** (rebuilt meanwhile): " + "; ".join(
            f"{x} {m['binaries'][x]['sha256']} ({m['binaries'][x]['mtime']}) → {after[x]['sha256']} ({after[x]['mtime']})"
            for x in after if after[x]["sha256"] != m["binaries"][x]["sha256"]) +
            ". Servers started before kept the old relay; each loadgen run used the file as it was then.")
    for dd in s["deaths"]:
        odd.append(f"- **{dd['server']} exited** (code {dd['exit']}) after: {dd['after']}; it was started again.")
    for (key, w), rs in sorted(fan.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for i, r in enumerate(rs):
            if not r.get("ok", True):
                odd.append(f"- fan-out {key} window {w}, repetition {i + 1} failed: `{r.get('error', '')[:300]}`")
            elif r.get("errors") or r.get("dropped") or r.get("lags"):
                odd.append(f"- fan-out {key} window {w}, repetition {i + 1}: loadgen saw {r.get('errors')} errors, "
                           f"{r.get('dropped')} dropped, {r.get('lags')} lags.")
            x = r.get("relay_metrics") or {}
            if x and r.get("ok", True) and abs(x["deliveries"] - r.get("delivered", 0)) > 0.01 * max(r.get("delivered", 0), 1):
                odd.append(f"- fan-out {key} window {w}, repetition {i + 1}: the relay counted {x['deliveries']:,.0f} "
                           f"deliveries (/metrics) where loadgen received {r.get('delivered', 0):,}.")
            if x.get("lags") or x.get("dropped"):
                odd.append(f"- fan-out {key} window {w}, repetition {i + 1}: the relay counted {x['lags']:.0f} lags and "
                           f"{x['dropped']:.0f} dropped frames (/metrics).")
            gone = {kk: vv for kk, vv in x.items() if kk.startswith("relay_transport_goaways") and vv}
            if gone:
                odd.append(f"- fan-out {key} window {w}, repetition {i + 1}: GOAWAYs {gone}.")
    for key, rs in echo.items():
        for i, r in enumerate(rs):
            if not r.get("ok", True) or r.get("errors"):
                odd.append(f"- echo {key}, repetition {i + 1}: {r.get('error', '')[:300] or str(r.get('errors')) + ' errors'}")
    for name, rs in hs.items():
        for i, r in enumerate(rs):
            if r.get("error") or r.get("failed") or r.get("errored") or r.get("status_other"):
                odd.append(f"- h2load {name}, repetition {i + 1}: {r.get('failed')} failed, {r.get('errored')} errored, "
                           f"{r.get('status_other')} non-2xx {r.get('error', '')[:200]}")
    for name, lines_ in s["logs"].items():
        interesting = [ln for ln in lines_ if ln.strip()]
        if interesting:
            odd.append(f"- {name} wrote {len(interesting)} lines at --log-level warning or above, e.g.: "
                       + "; ".join(f"`{ln[:200]}`" for ln in interesting[:3]))
    lines += ["## What the script flagged", ""] + (odd or ["Nothing: no failed run, no loadgen error, drop or lag, no "
                                                          "relay lag or drop in /metrics, no GOAWAY, no relay exit, no "
                                                          "warning in the relays' logs, no failed h2load request."]) + [""]

    raw = {"fanout": {f"{k} window {w}": rs for (k, w), rs in fan.items()}, "echo": echo, "echo_grpc_probe": probe,
           "h2load": hs, "relay_deaths": s["deaths"]}
    lines += ["Raw JSON of every run:", "", "```json", json.dumps(raw, indent=1, default=str), "```", ""]
    images = plots(base, fan, hs)
    C.write_report(base, lines, 2, images)
    log(f"wrote {base}.md")


def plots(base, fan, hs):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import statistics
    fig, ax = plt.subplots(figsize=(11, 4.6))
    keys = [v for v in FANOUT if any((v[0], w) in fan for w in WINDOWS)]
    width = 0.38
    for i, (w, color) in enumerate(zip(WINDOWS, ("tab:blue", "tab:orange"))):
        xs = [x + (i - 0.5) * width for x in range(len(keys))]
        vals = [[(rate(r) or 0) / 1e6 for r in fan.get((v[0], w), [])] for v in keys]
        meds = [statistics.median(x) if x else 0 for x in vals]
        lo = [mm - min(x) if x else 0 for mm, x in zip(meds, vals)]
        hi = [max(x) - mm if x else 0 for mm, x in zip(meds, vals)]
        ax.bar(xs, meds, width=width, yerr=[lo, hi], capsize=3, color=color, label=f"window {w}")
        for x, v, mm, top in zip(xs, keys, meds, [mm + h for mm, h in zip(meds, hi)]):
            if v[0] != "ws":
                r = paired(fan.get((v[0], w), []), fan.get(("ws", w), []))
                if r:
                    ax.annotate(f"{r:.2f}×", (x, top), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.set_xticks(range(len(keys)), [v[1].replace(", ", "\n") for v in keys], fontsize=8)
    ax.set_ylabel("million deliveries/s (median, bars: min–max)")
    ax.set_title("fan-out 1→100, 128 B, closed loop (label: ÷ relay ws, median of paired runs)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = [h for h in H2LOAD if h[0] in hs]
    vals = [[r.get("req_per_s") or 0 for r in hs[h[0]]] for h in names]
    meds = [statistics.median(x) / 1e3 if x else 0 for x in vals]
    lo = [mm - min(x) / 1e3 for mm, x in zip(meds, vals)]
    hi = [max(x) / 1e3 - mm for mm, x in zip(meds, vals)]
    ax.bar(range(len(names)), meds, yerr=[lo, hi], capsize=3, color=["tab:green", "tab:gray", "tab:gray"][:len(names)])
    relay = hs.get("relay", [])
    for x, h in enumerate(names):
        if h[0] != "relay":
            r = C.med([p.get("req_per_s", 0) / q["req_per_s"] for p, q in zip(relay, hs[h[0]]) if q.get("req_per_s") and p.get("req_per_s")])
            if r:
                ax.annotate(f"relay ÷ this: {r:.2f}×", (x, meds[x] + hi[x]), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), [h[1].replace(" (", "\n(") for h in names], fontsize=8)
    ax.set_ylabel("thousand requests/s (median, bars: min–max)")
    ax.set_title("h2load -c 10 -m 10, GET /health over h2c", fontsize=10)
    ax.set_ylim(0, 1.15 * max([m + h for m, h in zip(meds, hi)] + [1]))
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(base + "-h2load.png", dpi=100)
    plt.close(fig)
    return [("deliveries/s per transport", ".png"), ("h2load requests/s", "-h2load.png")]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Writes the HTTP/2 report again from a run's saved measurements "
                                             "(run the benchmark itself with compare.py --http2).")
    ap.add_argument("--report-from", required=True, help="the http2-state.pickle a run saved")
    a = ap.parse_args()
    with open(a.report_from, "rb") as f:
        write_http2_report(pickle.load(f))
