#!/usr/bin/env python3
"""Side-by-side benchmark: this relay against nats-server (WebSocket, no TLS),
measured with the same client (`loadgen`) in one run on loopback; for the
fan-out runs also against a minimal C WebSocket fan-out server
(Benchmarks/reference/fanout_server.c) and the kernel floor (Benchmarks/floor).

Usage: .venv/bin/python Benchmarks/compare.py [--quick]
Writes Benchmarks/results/<date>-<host>.md and PNG plots beside it.

       .venv/bin/python Benchmarks/compare.py --tls [--reps 3] [--quick]
The TLS section instead (about 8 minutes): a self-signed certificate made
with the openssl CLI, then fan-out 1→100 at windows 32 and 1000 (and a
moderate-rate latency run) over ws:// and wss:// against the relay
(`--tls`) and nats-server (TLS on its WebSocket listener), interleaved,
medians of --reps; new TLS handshakes/s with and without resumption
(`openssl s_time -new`/`-reuse`, several at once) with the servers' CPU and
the relay's /stats TLS counters; and the relay under callgrind for the same
fan-out over ws:// and wss:// (instructions per delivery, top functions).
Writes Benchmarks/results/<date>-tls.md and PNG plots beside it.

       .venv/bin/python Benchmarks/compare.py --http2 [--reps 3] [--quick]
The HTTP/2 section instead (Benchmarks/http2bench.py, about 6 minutes):
fan-out 1→100 over ws, h2c, gRPC, wss and h2 against the relay and ws
against nats-server, echo over ws/h2c(/gRPC), and h2load GET /health
against the relay and nghttpd; writes Benchmarks/results/<date>-http2.md.
Needs release builds of relay and loadgen (make bench builds them) and
nats-server (installed with apt if absent); a C compiler and libcrypto
(libssl-dev) for the C columns, which are left out without them.

       .venv/bin/python Benchmarks/compare.py --compression [--reps 3] [--quick]
The permessage-deflate section instead (Benchmarks/compressionbench.py,
about 6 minutes): zlib vs libdeflate on a recorded terminal trace
(Benchmarks/deflate/deflate_compare.c), then the relay with
--compression shared and off: bytes on the wire per frame, fan-out 1→100 of
the trace (Benchmarks/deflate/pmd_fanout.c: loadgen offers no compression),
memory per idle compressing connection, the cost of a join with a full
replay ring; writes Benchmarks/results/<date>-compression.md. Needs zlib1g-dev
and libdeflate-dev for the C programs and the websockets package in .venv.

RELAY_BIN and LOADGEN_BIN override the binaries (default .build/release/…),
C_BUILD_DIR where the C programs are built (default .build).
"""
import argparse, datetime, json, os, pickle, platform, re, shutil, signal, socket, ssl, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, logger, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAY = os.environ.get("RELAY_BIN") or os.path.join(ROOT, ".build/release/relay")
LOADGEN = os.environ.get("LOADGEN_BIN") or os.path.join(ROOT, ".build/release/loadgen")
C_BUILD = os.environ.get("C_BUILD_DIR") or os.path.join(ROOT, ".build")
SECRET = "compare-secret"


log = logger("compare")


# Frames/s per pod of the latency run both servers sustain (1→100: 200,000 deliveries/s).
MODERATE_RATE = 2000


FLOOR_SRC = os.path.join(ROOT, "Benchmarks/floor/loopback_floor.c")
FLOOR = os.path.join(C_BUILD, "loopback_floor")
REFERENCE_SRC = os.path.join(ROOT, "Benchmarks/reference/fanout_server.c")
REFERENCE = os.path.join(C_BUILD, "fanout_server")


def build_floor():
    """The C program that makes only the syscalls (Benchmarks/floor): the
    kernel's floor on this machine for the same traffic."""
    cc = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if cc is None:
        return False
    os.makedirs(C_BUILD, exist_ok=True)
    return subprocess.run([cc, "-O2", "-pthread", "-o", FLOOR, FLOOR_SRC]).returncode == 0


def build_reference():
    """The minimal C WebSocket fan-out server (Benchmarks/reference): the
    relay's work for `loadgen fanout` (upgrade, unmask, encode once, queue
    references, one writev per connection per turn) and nothing more."""
    cc = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if cc is None:
        return False
    os.makedirs(C_BUILD, exist_ok=True)
    return subprocess.run([cc, "-O2", "-o", REFERENCE, REFERENCE_SRC, "-lcrypto"]).returncode == 0


def floor(args, duration):
    """deliveries/s (fan-out) or round trips/s (echo) of the C floor program."""
    log("loopback_floor " + " ".join(args))
    out = subprocess.run([FLOOR] + args + [str(duration)], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"([0-9.]+) (deliveries|round trips)/s", out)
    return float(m.group(1)) if m else None


def ensure_nats():
    if shutil.which("nats-server"):
        return
    log("installing nats-server (apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "nats-server"], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def start_relay(extra=(), stderr=subprocess.DEVNULL):
    port = free_port()
    p = subprocess.Popen([RELAY, "--port", str(port), "--host", "127.0.0.1", "--jwt-secret", SECRET,
                          "--echo-endpoint", "--log-level", "warning", "--max-browsers-per-pod", "100000"] + list(extra),
                         stderr=stderr, start_new_session=True)
    wait_port(port)
    return p, port


def start_reference():
    port = free_port()
    p = subprocess.Popen([REFERENCE, str(port)], stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return p, port


def start_nats(tmp, tls=None):
    """nats-server with its WebSocket listener; `tls` = (cert, key) puts TLS on it."""
    port, ws = free_port(), free_port()
    conf = os.path.join(tmp, "nats-tls.conf" if tls else "nats.conf")
    if tls:
        # timeout: the TLS handshake's (seconds), above the 2 s default so that
        # 101 handshakes at once on a busy 2-core machine are not cut short.
        listener = (f'tls {{ cert_file: "{tls[0]}", key_file: "{tls[1]}", timeout: 10 }}')
    else:
        listener = "no_tls: true"
    with open(conf, "w") as f:
        f.write(f"host: 127.0.0.1\nport: {port}\nwebsocket {{ host: 127.0.0.1, port: {ws}, {listener} }}\n"
                "max_payload: 1048576\nmax_pending: 67108864\n")
    p = subprocess.Popen(["nats-server", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    wait_port(ws)
    return p, ws


# The loadgen --target each measured server is driven as: the C reference
# speaks the relay's paths and frames.
LOADGEN_TARGET = {"ref": "relay", "relay-tls": "relay", "nats-tls": "nats"}


def loadgen(scenario, target, port, pid, args, duration, tmp, ca_file=None):
    """One loadgen run; `ca_file`: over wss://, verifying the server with that CA."""
    out = os.path.join(tmp, f"{scenario}-{target}-{time.time_ns()}.json")
    kind = LOADGEN_TARGET.get(target, target)
    scheme = "wss" if ca_file else "ws"
    tls_args = ["--ca-file", ca_file] if ca_file else []
    cmd = [LOADGEN, scenario, "--target", kind, "--url", f"{scheme}://127.0.0.1:{port}", "--secret", SECRET,
           "--server-pid", str(pid), "--duration", str(duration), "--json", out, "--quiet"] + tls_args + args
    log(" ".join(os.path.basename(c) if c == LOADGEN else c for c in cmd[:2] + cmd[3:5] + args)
        + (f" {scheme}://" if ca_file else "")
        + ("" if kind == target or ca_file else f"  (the C reference, {REFERENCE})"))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    try:
        with open(out) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"ok": False, "error": r.stdout[-500:]}


def effective_cores():
    """How much parallel CPU the machine really gives: the same busy loop in
    one process and in two at once (2.0 = two full cores; shared vCPUs give less)."""
    code = "import time\nt=time.perf_counter()\nx=0\nfor i in range(6_000_000): x+=i\nprint(time.perf_counter()-t)"
    def run(n):
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)
    one = run(1)
    two = run(2)
    return round(2 * one / two, 2)


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "host": socket.gethostname(),
            "effective_cores": effective_cores()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short runs (for a smoke test)")
    ap.add_argument("--tls", action="store_true",
                    help="the TLS section instead: ws:// vs wss:// fan-out, handshakes/s, callgrind (<date>-tls.md)")
    ap.add_argument("--http2", action="store_true",
                    help="the HTTP/2 section instead: ws/h2c/gRPC/h2 fan-out, echo, h2load vs nghttpd (<date>-http2.md)")
    ap.add_argument("--compression", action="store_true",
                    help="the permessage-deflate section instead: zlib vs libdeflate, wire bytes, fan-out, idle memory (<date>-compression.md)")
    ap.add_argument("--reps", type=int, default=None, help="--tls, --http2, --compression: interleaved repetitions (default 3, 1 with --quick)")
    ap.add_argument("--handshake-seconds", type=float, default=None, help="--tls: seconds per s_time run (default 5)")
    ap.add_argument("--handshake-procs", type=int, default=2, help="--tls: s_time processes at once")
    ap.add_argument("--callgrind-seconds", type=float, default=5,
                    help="--tls: steady-state seconds counted under callgrind (0: no callgrind runs)")
    ap.add_argument("--tls-report-from", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.tls_report_from:
        tls_report_from(opts.tls_report_from)
        return
    d = 2 if opts.quick else 5
    for exe in (RELAY, LOADGEN):
        if not os.path.exists(exe):
            sys.exit(f"missing {exe}: run `swift build -c release` first")
    if opts.compression:
        import compressionbench
        compressionbench.main(opts, d)
        return
    ensure_nats()
    if opts.tls:
        tls_main(opts, d)
        return
    if opts.http2:
        import http2bench
        http2bench.main(opts, d)
        return
    log("measuring how many cores the machine really gives")
    m = machine()
    tmp = tempfile.mkdtemp(prefix="compare-")
    results = []
    servers = []

    def fresh_servers():
        # Memory per connection is only meaningful on a process that has not
        # already grown its heap for earlier scenarios: each phase gets new servers.
        for p in servers:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        servers.clear()
        relay, relay_port = start_relay()
        nats, nats_port = start_nats(tmp)
        servers.extend([relay, nats])
        targets.clear()
        targets.update({"relay": (relay_port, relay.pid), "nats": (nats_port, nats.pid)})
        if have_ref:
            ref, ref_port = start_reference()
            servers.append(ref)
            targets["ref"] = (ref_port, ref.pid)

    targets = {}

    have_floor = build_floor()
    have_ref = build_reference()
    if not have_ref:
        log("could not build Benchmarks/reference/fanout_server.c (cc, libssl-dev?): no C reference column")
    # The fan-out throughput runs also measure the C reference server.
    fanout_targets = ("relay", "nats", "ref")

    def run(name, scenario, args, targets_used=("relay", "nats"), duration=d, floor_args=None):
        row = {"name": name}
        for t in targets_used:
            if t not in targets:
                continue
            port, pid = targets[t]
            row[t] = loadgen(scenario, t, port, pid, args, duration, tmp)
        if floor_args and have_floor:
            row["floor"] = floor(floor_args, duration)
        results.append(row)
        return row

    started = time.time()
    try:
        fresh_servers()
        n = 2000 if opts.quick else 15000
        run(f"{n} idle subscribed connections", "connections",
            ["--connections", str(n), "--per-pod", "9", "--loops", "2"], duration=3)
        fresh_servers()
        windows = [8, 32, 256, 1000]
        for w in windows:
            # 134 B on the wire: 128 B payload + 6 B of masked client header.
            run(f"fanout 1→100, 128 B, window {w}", "fanout",
                ["--pods", "1", "--subscribers", "100", "--size", "128", "--max", "--window", str(w)],
                targets_used=fanout_targets, floor_args=["100", str(w), "134"])
        # Deliveries/s against fan-out, 32 in flight: 1→10, (1→100 above), 1→1000.
        for n in (10, 1000):
            run(f"fanout 1→{n}, 128 B, window 32", "fanout",
                ["--pods", "1", "--subscribers", str(n), "--size", "128", "--max", "--window", "32"],
                targets_used=fanout_targets, floor_args=[str(n), "32", "134"])
        fanouts = [r for r in results if r["name"].startswith("fanout 1→100, 128 B, window")]
        peak = max(r["relay"].get("deliveries_per_s", 0) for r in fanouts)
        rate = max(1, int(peak / 100 / 2))
        run(f"fanout 1→100 at half the relay's peak ({rate} frames/s), latency", "fanout",
            ["--pods", "1", "--subscribers", "100", "--size", "128", "--rate", str(rate)])
        # A rate both servers sustain: latency of each when neither is saturated.
        run(f"fanout 1→100 at {MODERATE_RATE} frames/s, latency", "fanout",
            ["--pods", "1", "--subscribers", "100", "--size", "128", "--rate", str(MODERATE_RATE)])
        run("echo, 100 connections, 512 B", "echo", ["--connections", "100", "--size", "512"],
            floor_args=["echo", "100", "518"])
        run("input: 10 pods × 3 browsers × 20 keys/s", "input", ["--pods", "10", "--browsers", "3"], targets_used=("relay",))
        run("attach: 50 joins/s into a pod publishing 1000 frames/s", "attach", [], targets_used=("relay",))
    finally:
        for p in servers:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
    elapsed = time.time() - started
    write_report(results, windows, m, elapsed, opts.quick)


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def write_report(results, windows, m, elapsed, quick):
    date = datetime.date.today().isoformat()
    base = os.path.join(ROOT, "Benchmarks", "results", f"{date}-{m['host']}" + ("-quick" if quick else ""))
    lines = [f"# relay vs nats-server, {date}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']} (host {m['host']}); "
             f"two CPU-bound processes together get {m['effective_cores']} cores' worth of time "
             f"(the servers and `loadgen` share it).",
             f"Both servers on loopback, measured by the same client (`loadgen`) in one run of "
             f"`Benchmarks/compare.py` ({elapsed:.0f} s). nats-server {nats_version()} with its WebSocket listener, no TLS.", "",
             "The kernel floor is `Benchmarks/floor/loopback_floor.c`: the same syscalls from C "
             "(writes of the same bursts to the same number of loopback sockets, a reader thread; or "
             "a C echo server and client) with no protocol work at all: what this machine's loopback TCP allows.", "",
             "The C reference (fan-out throughput runs only) is `Benchmarks/reference/fanout_server.c`: a "
             "single-threaded epoll WebSocket server doing the relay's work for `loadgen fanout` (upgrade, pod "
             "from the token, unmask, encode each message once into a refcounted buffer, queue a reference per "
             "browser, one `writev` per connection per loop turn) with none of its other duties (no signature "
             "check, replay, lag policy or extension frames), driven by the same `loadgen --target relay` "
             "command lines: what the same work costs with no abstraction.", "",
             "| scenario | relay deliveries/s | nats deliveries/s | relay ÷ nats | kernel floor (C) /s | relay ÷ floor | C reference /s | relay ÷ C reference | relay p50/p99 µs | nats p50/p99 µs | C reference p50/p99 µs | relay reach | relay CPU µs/delivery | nats CPU µs/delivery | C reference CPU µs/delivery | loadgen CPU (relay run) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        a, b = r.get("relay", {}), r.get("nats")
        ra = a.get("deliveries_per_s")
        rb = b.get("deliveries_per_s") if b else None
        ratio = f"{ra / rb:.2f}×" if ra and rb else "-"
        la = a.get("latency_us", {})
        lb = (b or {}).get("latency_us", {})
        extra = ""
        if "server_rss_bytes_per_connection" in a:
            extra = f" (RSS/conn: relay {a['server_rss_bytes_per_connection']} B, nats {(b or {}).get('server_rss_bytes_per_connection', '-')} B)"
        err = "" if a.get("ok", True) else f" **relay failed: {a.get('error', '')[:120]}**"
        if b is not None and not b.get("ok", True):
            err += f" **nats failed: {b.get('error', '')[:120]}**"
        c = r.get("ref")
        if c is not None and not c.get("ok", True):
            err += f" **C reference failed: {c.get('error', '')[:120]}**"
        rc = c.get("deliveries_per_s") if c else None
        of_ref = f"{ra / rc:.2f}×" if ra and rc else "-"
        lc = (c or {}).get("latency_us", {})
        fl = r.get("floor")
        of_floor = f"{100 * ra / fl:.0f}%" if ra and fl else "-"
        lines.append(f"| {r['name']}{extra}{err} | {fmt(ra)} | {fmt(rb)} | {ratio} | {fmt(fl)} | {of_floor} | {fmt(rc)} | {of_ref} | {la.get('p50', '-')}/{la.get('p99', '-')} | "
                     f"{lb.get('p50', '-') if b else '-'}/{lb.get('p99', '-') if b else '-'} | "
                     f"{lc.get('p50', '-') if c else '-'}/{lc.get('p99', '-') if c else '-'} | {(fmt(100 * a['reach'], 2) + '%') if a.get('expected') else '-'} | "
                     f"{fmt(a.get('server_cpu_us_per_delivery'), 3)} | {fmt((b or {}).get('server_cpu_us_per_delivery'), 3)} | "
                     f"{fmt((c or {}).get('server_cpu_us_per_delivery'), 3)} | {fmt(a.get('client_cpu_percent'))}% |")
    # The per-bucket histograms are for merging worker processes, not for reading.
    raw = [{k: ({kk: vv for kk, vv in v.items() if kk != "latency_histogram"} if isinstance(v, dict) else v)
            for k, v in r.items()} for r in results]
    lines += ["", "Raw JSON of every run:", "", "```json", json.dumps(raw, indent=1), "```", ""]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        def rate_plot(xs, rows, xlabel, path):
            """Deliveries/s of relay, nats, the C reference and the floor against `xs` (one row each)."""
            fig, ax = plt.subplots(figsize=(7, 4))
            for t, label in (("relay", "relay"), ("nats", "nats"), ("ref", "C reference (fanout_server.c)")):
                if all(t in r for r in rows):
                    ax.plot(xs, [r[t].get("deliveries_per_s", 0) / 1e6 for r in rows], marker="o", label=label)
            if all(r.get("floor") for r in rows):
                ax.plot(xs, [r["floor"] / 1e6 for r in rows], linestyle="--", color="gray",
                        label="kernel floor (C, syscalls only)")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("million deliveries/s")
            ax.set_ylim(bottom=0)
            ax.legend()
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            fig.savefig(path, dpi=100)

        rate_plot(windows, [r for r in results if r["name"].startswith("fanout 1→100, 128 B, window")],
                  "frames in flight per subscriber (fan-out 1→100, 128 B)", base + "-fanout.png")
        by_subs = {int(m.group(1)): r for r in results
                   if (m := re.match(r"fanout 1→(\d+), 128 B, window 32$", r["name"]))}
        subs = sorted(by_subs)
        rate_plot(subs, [by_subs[n] for n in subs],
                  "subscribers of one publisher (128 B frames, 32 in flight each)", base + "-scaling.png")
        pcts = ["p50", "p90", "p99", "p999", "max"]
        runs = [r for r in results if "latency" in r["name"]]
        fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
        for ax, lat in zip(axes[0], runs):
            for i, t in enumerate(("relay", "nats")):
                ys = [lat[t].get("latency_us", {}).get(p, 0) for p in pcts]
                ax.bar([x + i * 0.4 for x in range(len(pcts))], ys, width=0.4, label=t)
            ax.set_xticks([x + 0.2 for x in range(len(pcts))], pcts)
            ax.set_yscale("log")
            ax.set_ylabel("publish → receive latency (µs)")
            ax.set_title(lat["name"].replace(", latency", ""), fontsize=9)
            ax.legend()
        fig.tight_layout()
        fig.savefig(base + "-latency.png", dpi=100)
        images = [("deliveries/s against window", "-fanout.png"), ("deliveries/s against fan-out", "-scaling.png"),
                  ("latency percentiles", "-latency.png")]
    except ImportError:
        images = None
    write_report(base, lines, 4, images)
    log(f"wrote {base}.md")


def write_report(base, lines, at, images):
    """Writes base.md: `lines`, with the plots `images` ([(alt, suffix)])
    linked at line `at`, or a note there when matplotlib was missing (None)."""
    if images is None:
        lines.insert(at, "(matplotlib missing: no plots)")
    else:
        lines[at:at] = [" ".join(f"![{alt}]({os.path.basename(base)}{suffix})" for alt, suffix in images), ""]
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines))


def nats_version():
    try:
        return subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


# MARK: TLS (--tls)

TLS_WINDOWS = (32, 1000)
# openssl s_time modes: (label, TLS version, flags). s_time never reads after
# the handshake unless -www asks for a page, so it never sees TLS 1.3's
# session tickets (sent after the handshake): its TLS 1.3 -reuse does full
# handshakes. TLS 1.2 resumes inside the handshake; "-www /health" makes it
# read (the relay's answer, and with it the tickets), so TLS 1.3 resumes too.
HANDSHAKE_MODES = (
    ("new", "1.3", ["-new"]),
    ("reuse", "1.3", ["-reuse"]),
    ("new", "1.2", ["-new", "-tls1_2"]),
    ("reuse", "1.2", ["-reuse", "-tls1_2"]),
    ("reuse + GET /health", "1.3", ["-reuse", "-www", "/health"]),
)


def make_cert(tmp):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (openssl CLI)."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def negotiated(port):
    """What `openssl s_client` negotiates by default: 'TLSv1.3 TLS_AES_256_GCM_SHA384 X25519'."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"],
                       input="", capture_output=True, text=True, timeout=20)
    text = r.stdout + r.stderr
    ver = re.search(r"Protocol version: (\S+)", text)
    cipher = re.search(r"Ciphersuite: (\S+)", text)
    group = re.search(r"(?:Negotiated|Server Temp Key).*?: (\S+)", text)
    return " ".join(m.group(1).rstrip(",") for m in (ver, cipher, group) if m)


def cipher_speeds():
    """Bytes/s one core encrypts in 16 KiB pieces (`openssl speed -evp`): the ceiling of a TLS stream."""
    out = {}
    for c in ("aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"):
        r = subprocess.run(["openssl", "speed", "-seconds", "1", "-bytes", "16384", "-evp", c],
                           capture_output=True, text=True, timeout=60).stdout.strip().splitlines()
        mm = re.match(r"^\S+\s+([\d.]+)k$", r[-1]) if r else None
        if mm:
            out[c] = float(mm.group(1)) * 1000
    return out


def cpu_seconds(pid):
    """User + system CPU of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def relay_tls_stats(port):
    """The TLS counters of the relay's /stats: {handshakes, resumed, failures,
    versions}. The request is a TLS connection of its own (one handshake)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/stats", timeout=20, context=ctx) as r:
        t = json.load(r).get("tls", {})
    return {"handshakes": t.get("handshakes", 0), "resumed": t.get("resumed", 0),
            "failures": sum(t.get("handshake_failures", {}).values()),
            "failure_reasons": t.get("handshake_failures", {}), "versions": t.get("versions", {})}


def s_time(port, flags, procs, seconds, server_pid, relay_port=None):
    """`procs` openssl s_time processes at once for `seconds` against `port`:
    connections/s (summed over the processes, each over its own wall time),
    resumed and full handshakes as s_time marks them ('r' / '*'), the
    server's CPU, and for the relay the change in its /stats TLS counters
    (less the one handshake of the /stats request itself)."""
    before = relay_tls_stats(relay_port) if relay_port else None
    cpu0 = cpu_seconds(server_pid)
    t0 = time.time()
    ps = [subprocess.Popen(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-time", str(int(seconds))] + flags,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(procs)]
    outs = []
    for p in ps:
        out, _ = p.communicate(timeout=seconds + 60)
        outs.append((out, time.time() - t0))
    wall = time.time() - t0
    cpu = cpu_seconds(server_pid) - cpu0
    after = relay_tls_stats(relay_port) if relay_port else None
    conns, rate, reused, full = 0, 0.0, 0, 0
    for out, w in outs:
        m = re.search(r"(\d+) connections in [\d.]+s;", out)
        n = int(m.group(1)) if m else 0
        conns += n
        rate += n / w
        for marks in re.findall(r"^[*r123t]+$", out, re.M):
            reused += marks.count("r")
            full += len(marks) - marks.count("r")
    r = {"connections": conns, "per_s": rate, "client_reused": reused, "client_full": full,
         "wall_s": wall, "server_cpu_s": cpu, "server_cpu_percent": 100 * cpu / wall,
         "server_cpu_us_per_connection": 1e6 * cpu / conns if conns else None}
    if before is not None:
        r["relay_handshakes"] = after["handshakes"] - before["handshakes"] - 1
        r["relay_resumed"] = after["resumed"] - before["resumed"]
        r["relay_failures"] = after["failures"] - before["failures"]
        r["relay_failure_reasons"] = {k: v - before["failure_reasons"].get(k, 0)
                                      for k, v in after["failure_reasons"].items()
                                      if v != before["failure_reasons"].get(k, 0)}
    return r


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def git_describe():
    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "Sources", "Package.swift")
    return head + (" (with uncommitted changes under Sources/)" if dirty else "")


def tls_main(opts, d):
    reps = opts.reps or (1 if opts.quick else 3)
    hs_seconds = opts.handshake_seconds or (2 if opts.quick else 5)
    started = time.time()
    log("measuring how many cores the machine really gives")
    m = machine()
    m["commit"] = git_describe()
    tmp = tempfile.mkdtemp(prefix="compare-tls-")
    cert, key = make_cert(tmp)
    log(f"self-signed ECDSA P-256 certificate for 127.0.0.1 in {tmp}")
    speeds = cipher_speeds()
    log("openssl speed, 16 KiB records, one core: " + ", ".join(f"{c} {v / 1e9:.2f} GB/s" for c, v in speeds.items()))
    servers = []
    fan, lat, hs = {}, {}, {}
    cg = {}
    try:
        relay, relay_port = start_relay()
        relay_tls, relay_tls_port = start_relay(["--tls", "--tls-cert", cert, "--tls-key", key])
        nats, nats_port = start_nats(tmp)
        nats_tls, nats_tls_port = start_nats(tmp, (cert, key))
        servers.extend([relay, relay_tls, nats, nats_tls])
        targets = {("relay", "ws"): ("relay", relay_port, relay.pid), ("relay", "wss"): ("relay-tls", relay_tls_port, relay_tls.pid),
                   ("nats", "ws"): ("nats", nats_port, nats.pid), ("nats", "wss"): ("nats-tls", nats_tls_port, nats_tls.pid)}
        suites = {"relay": negotiated(relay_tls_port), "nats": negotiated(nats_tls_port)}
        log(f"negotiated by default: relay {suites['relay']}; nats {suites['nats']}")

        def fanout_run(srv, scheme, args, k, total, what):
            name, port, pid = targets[(srv, scheme)]
            r = loadgen("fanout", name, port, pid, args, d, tmp, ca_file=cert if scheme == "wss" else None)
            lt = r.get("latency_us", {})
            log(f"[{k}/{total}] {what} {srv} {scheme}://: {r.get('deliveries_per_s', 0) / 1e6:.2f} M deliveries/s, "
                f"p50/p99 {lt.get('p50', '-')}/{lt.get('p99', '-')} µs, server CPU "
                f"{r.get('server_cpu_us_per_delivery', '-')} µs/delivery" + ("" if r.get("ok", True) else f" FAILED: {r.get('error', '')[:200]}"))
            return r

        total = reps * (len(TLS_WINDOWS) * 4 + 4)
        k = 0
        for i in range(reps):
            # Interleaved: each repetition flips the order of servers and of ws/wss.
            for j, w in enumerate(TLS_WINDOWS):
                for srv in (("relay", "nats") if i % 2 == 0 else ("nats", "relay")):
                    for scheme in (("ws", "wss") if (i + j) % 2 == 0 else ("wss", "ws")):
                        k += 1
                        r = fanout_run(srv, scheme, ["--pods", "1", "--subscribers", "100", "--size", "128", "--max",
                                                     "--window", str(w)], k, total, f"rep {i + 1}/{reps} fan-out 1→100 window {w}")
                        fan.setdefault((srv, scheme, w), []).append(r)
            for srv in (("relay", "nats") if i % 2 == 0 else ("nats", "relay")):
                for scheme in (("ws", "wss") if i % 2 == 0 else ("wss", "ws")):
                    k += 1
                    r = fanout_run(srv, scheme, ["--pods", "1", "--subscribers", "100", "--size", "128",
                                                 "--rate", str(MODERATE_RATE)], k, total,
                                   f"rep {i + 1}/{reps} fan-out 1→100 at {MODERATE_RATE} frames/s")
                    lat.setdefault((srv, scheme), []).append(r)

        total = reps * len(HANDSHAKE_MODES) * 2
        k = 0
        for i in range(reps):
            for label, version, flags in HANDSHAKE_MODES:
                for srv in (("relay", "nats") if i % 2 == 0 else ("nats", "relay")):
                    k += 1
                    name, port, pid = targets[(srv, "wss")]
                    r = s_time(port, flags, opts.handshake_procs, hs_seconds, pid, port if srv == "relay" else None)
                    hs.setdefault((srv, label, version), []).append(r)
                    extra = (f"; relay /stats: {r['relay_handshakes']} handshakes, {r['relay_resumed']} resumed, "
                             f"{r['relay_failures']} failed {r['relay_failure_reasons'] or ''}" if srv == "relay" else "")
                    log(f"[{k}/{total}] rep {i + 1}/{reps} s_time {' '.join(flags)} ×{opts.handshake_procs} {srv}: "
                        f"{r['per_s']:.0f} connections/s ({r['client_reused']} resumed by s_time's marks), "
                        f"server CPU {r['server_cpu_percent']:.0f}% = {r['server_cpu_us_per_connection'] or 0:.0f} µs/connection{extra}")
    finally:
        for p in servers:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
    if opts.callgrind_seconds > 0:
        import ab
        cgdir = os.path.join(tmp, "callgrind")
        os.makedirs(cgdir, exist_ok=True)
        for scheme, relay_args, lg_args in (("ws", [], []),
                                            ("wss", ["--tls", "--tls-cert", cert, "--tls-key", key], ["--tls", "--ca-file", cert])):
            log(f"callgrind: the relay over {scheme}://, window 32, {opts.callgrind_seconds:g} s of steady state")
            total_ir, delivered, part = ab.callgrind_steady(RELAY, relay_args, lg_args, 32, 100, 128,
                                                            opts.callgrind_seconds, os.path.join(cgdir, f"cg-{scheme}.out"), tmp)
            cg[scheme] = {"ir": total_ir, "deliveries": delivered, "file": part}
            log(f"callgrind {scheme}: {total_ir:,} Ir over {delivered:,.0f} deliveries = {total_ir / max(delivered, 1):.0f} Ir/delivery")
    elapsed = time.time() - started
    state = os.path.join(tmp, "tls-state.pickle")
    with open(state, "wb") as f:
        pickle.dump((fan, lat, hs, cg, suites, m, elapsed, vars(opts), reps, hs_seconds, d, tmp, sys.argv, speeds), f)
    log(f"measurements saved in {state} (--tls-report-from {state} writes the report again)")
    write_tls_report(fan, lat, hs, cg, suites, m, elapsed, opts, reps, hs_seconds, d, tmp, speeds)


def tls_report_from(path):
    """Writes the TLS report again from a run's saved measurements."""
    with open(path, "rb") as f:
        state = pickle.load(f)
    fan, lat, hs, cg, suites, m, elapsed, o, reps, hs_seconds, d, tmp, argv = state[:13]
    speeds = state[13] if len(state) > 13 else {}
    sys.argv[1:] = argv[1:]
    write_tls_report(fan, lat, hs, cg, suites, m, elapsed, argparse.Namespace(**o), reps, hs_seconds, d, tmp, speeds)


def callgrind_arcs(path):
    """{(caller, callee): [calls, inclusive Ir]} from a callgrind file."""
    names, arcs = {}, {}
    fn = cfn = None
    pending = None

    def name(tok):
        mm = re.match(r"\((\d+)\)(?: (.*))?$", tok)
        if not mm:
            return tok
        if mm.group(2) is not None:
            names[mm.group(1)] = mm.group(2)
        return names.get(mm.group(1), mm.group(1))
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                cfn = name(line[4:])
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
            elif pending is not None and line and (line[0].isdigit() or line[0] in "+-*"):
                toks = line.split()
                a = arcs.setdefault((fn, cfn), [0, 0])
                a[0] += pending
                a[1] += int(toks[1]) if len(toks) > 1 else 0
                pending = None
    return arcs


def callgrind_calls(arcs):
    """Calls per callee."""
    calls = {}
    for (_, callee), (n, _) in arcs.items():
        calls[callee] = calls.get(callee, 0) + n
    return calls


def callgrind_inclusive(path):
    """{function: inclusive Ir} (callgrind_annotate --inclusive=yes)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    inc = {}
    for line in out.splitlines():
        mm = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$", line)
        if not mm or ":" not in mm.group(2):
            continue
        fn = mm.group(2).partition(":")[2]
        if " [" in fn:
            fn = fn.rpartition(" [")[0]
        inc[fn.strip()] = max(inc.get(fn.strip(), 0), int(mm.group(1).replace(",", "")))
    return inc


# The write path of a TLS connection, outermost first: (label, function name
# or regex on it). Inclusive Ir, so nested rows are parts of the rows above.
TLS_PATH = (
    ("TLSTransport.writev (the whole TLS write of a flush)", r"^\$s3TLS12TLSTransportC6writev_5count"),
    ("  ctls_write_gathered (gather into the 16 KiB stage, then SSL_write_ex)", "ctls_write_gathered"),
    ("    SSL_write_ex (one call per record)", "SSL_write_ex"),
    ("      EVP_EncryptUpdate (AES-GCM over the record; two calls per record: header as AAD, payload)", "EVP_EncryptUpdate"),
    ("      EVP_CipherInit_ex (per record: the nonce)", "EVP_CipherInit_ex"),
    ("      EVP_EncryptFinal_ex (per record: the GCM tag)", "EVP_EncryptFinal_ex"),
    ("      EVP_CIPHER_CTX_ctrl (per record)", "EVP_CIPHER_CTX_ctrl"),
    ("      BIO_write (ciphertext into the relay-out BIO's scratch)", "BIO_write"),
    ("      CRYPTO_malloc (buffers: SSL_MODE_RELEASE_BUFFERS frees them when idle)", "CRYPTO_malloc"),
    ("      CRYPTO_free", "CRYPTO_free"),
    ("  ctls_out_flush (one send of the flush's records)", "ctls_out_flush"),
    ("TLSTransport.read → SSL_read_ex (the runner's frames in)", "SSL_read_ex"),
    ("ERR_clear_error (before every SSL call)", "ERR_clear_error"),
)


# Functions of the TLS run, sorted into what they are. libcrypto and libssl
# ship without their internal symbols (Debian strips them; no -dbgsym
# package here), so some are addresses: the ones named here were told
# apart by their instructions (objdump -d): vaesenc with movbe, the stitched
# AES-CTR + GHASH loop of aesni-gcm-x86_64 (_aesni_ctr32_ghash_6x); vpclmulqdq
# with vpshufb, GHASH alone (gcm_ghash_avx / the tail of aesni_gcm_encrypt).
CG_CATEGORIES = (
    ("AES-GCM (encryption + GHASH, assembly)", lambda fn, obj: obj.startswith("libcrypto") and fn in AES_GCM_ADDRS),
    ("memcpy / memmove", lambda fn, obj: fn.startswith(("__memcpy", "__memmove", "memcpy", "memmove"))),
    ("malloc / free", lambda fn, obj: fn in MALLOC_FNS or fn.startswith("unlink_chunk")),
    ("other libcrypto (EVP, OSSL_PARAM, BIO, ERR: per-record overhead)", lambda fn, obj: obj.startswith("libcrypto")),
    ("libssl (record layer, SSL_write/SSL_read)", lambda fn, obj: obj.startswith("libssl")),
    ("libc string functions (strcmp, strlen: OSSL_PARAM lookups)", lambda fn, obj: obj.startswith("libc") and re.match(r"__str", fn) is not None),
    ("libc other (syscall wrappers, locks)", lambda fn, obj: obj.startswith("libc")),
    ("Swift runtime (retain/release, exclusivity)", lambda fn, obj: obj.startswith("libswift")),
    ("relay (Swift: reactor, pods, framing, TLS transport; C shims)", lambda fn, obj: True),
)
AES_GCM_ADDRS = set()
MALLOC_FNS = {"_int_malloc", "_int_free", "malloc", "free", "realloc", "posix_memalign", "_int_realloc", "_int_memalign",
              "_mid_memalign", "malloc_consolidate", "CRYPTO_free", "CRYPTO_malloc", "CRYPTO_zalloc", "CRYPTO_realloc",
              "swift_slowAlloc", "swift_slowDealloc"}


def classify_aes(obj_path, fn):
    """Whether a libcrypto address is AES-GCM assembly (vaesenc/vpclmulqdq in its first 1.5 KiB)."""
    if not fn.startswith("0x") or not shutil.which("objdump"):
        return False
    a = int(re.sub(r"'\d+$", "", fn), 16)  # callgrind marks recursion levels as 0x…'2
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={a:#x}", f"--stop-address={a + 0x600:#x}", obj_path],
                         capture_output=True, text=True).stdout
    return out.count("vaesenc") + out.count("aesenc") + out.count("vpclmul") + out.count("pclmul") > 10


def callgrind_breakdown(path, total):
    """Self Ir of every function in a callgrind part, sorted into CG_CATEGORIES."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    cats = {c[0]: 0 for c in CG_CATEGORIES}
    named = []
    for line in out.splitlines():
        mm = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$", line)
        if not mm or ":" not in mm.group(2):
            continue
        ir = int(mm.group(1).replace(",", ""))
        if ir >= 0.9 * total:
            continue  # the thread roots (clone, start_thread, the loop): the whole dump, not their own work
        where, _, fn = mm.group(2).partition(":")
        objpath = ""
        if " [" in fn:
            fn, _, objpath = fn.rpartition(" [")
            objpath = objpath.rstrip("]")
        fn = fn.strip()
        obj = os.path.basename(objpath or where)
        if obj.startswith("libcrypto") and objpath and fn.startswith("0x") and classify_aes(objpath, fn):
            AES_GCM_ADDRS.add(fn)
        for name, test in CG_CATEGORIES:
            if test(fn, obj):
                cats[name] += ir
                break
        named.append((ir, fn, obj))
    return cats, named


def write_tls_report(fan, lat, hs, cg, suites, m, elapsed, opts, reps, hs_seconds, d, tmp, speeds):
    date = datetime.date.today().isoformat()
    base = os.path.join(ROOT, "Benchmarks", "results", f"{date}-tls" + ("-quick" if opts.quick else ""))
    rel = os.path.relpath
    env = " ".join(f"{k}={rel(os.environ[k], ROOT) if os.path.isabs(os.environ[k]) else os.environ[k]}"
                   for k in ("RELAY_BIN", "LOADGEN_BIN") if os.environ.get(k))
    command = (env + " " if env else "") + ".venv/bin/python Benchmarks/compare.py " + " ".join(sys.argv[1:])

    def rate(r):
        return r.get("deliveries_per_s") if r.get("ok", True) else None

    lines = [f"# TLS: ws:// vs wss://, relay and nats-server, {date}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']} (host {m['host']}); two CPU-bound "
             f"processes together get {m['effective_cores']} cores' worth of time (servers, `loadgen` and "
             f"`openssl s_time` share it). No kernel TLS (the kernel has no CONFIG_TLS): every TLS byte is "
             f"copied and encrypted in user space, by the servers and by `loadgen`, on the same 2 cores.",
             f"Relay at commit {m.get('commit') or git_describe()}; nats-server {nats_version()}; {subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}.",
             f"Certificate: self-signed ECDSA P-256 for 127.0.0.1 (`openssl req -x509 -newkey ec`), in a temporary folder. "
             f"Negotiated by default (`openssl s_client`): relay {suites['relay']}; nats-server {suites['nats']}.",
             f"`loadgen` verifies the certificate (`--ca-file`).",
             "One core's encryption speed, 16 KiB records (`openssl speed -evp`): " +
             ", ".join(f"{c} {v / 1e9:.2f} GB/s (≈ {v / 130 / 1e6:.0f} M deliveries/s of 130 B, a 128 B frame "
                       f"with its header, if encrypting were all a core did)" if c == "aes-256-gcm"
                       else f"{c} {v / 1e9:.2f} GB/s" for c, v in speeds.items()) + ".", "",
             "Command (whole run "
             f"{elapsed / 60:.1f} min):", "", "```", command, "```", "",
             f"Every figure is the median of {reps} interleaved repetitions (each repetition flips the order of "
             f"the servers and of ws/wss); each fan-out run is {d} s after 1 s of warm-up. The four servers (relay, "
             f"relay --tls, nats-server, nats-server with TLS on its WebSocket listener) run side by side, idle when "
             f"not measured.", ""]
    # Fan-out table.
    lines += ["## Fan-out 1→100, 128 B frames, closed loop (`loadgen fanout --max --window W`)", "",
              "| server | window | ws:// deliveries/s | wss:// deliveries/s | TLS ÷ plain (of medians) | TLS ÷ plain (median of paired runs) | ws p50/p99 µs | wss p50/p99 µs | server CPU µs/delivery ws | wss | TLS CPU cost ns/delivery | loadgen CPU ws / wss | runs ws (M/s) | runs wss (M/s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for srv in ("relay", "nats"):
        for w in TLS_WINDOWS:
            a, b = fan.get((srv, "ws", w), []), fan.get((srv, "wss", w), [])
            ra, rb = med([rate(r) for r in a]), med([rate(r) for r in b])
            paired = med([rate(y) / rate(x) for x, y in zip(a, b) if rate(x) and rate(y)])
            ca = med([r.get("server_cpu_us_per_delivery") for r in a])
            cb = med([r.get("server_cpu_us_per_delivery") for r in b])
            la = {p: med([r.get("latency_us", {}).get(p) for r in a]) for p in ("p50", "p99")}
            lb = {p: med([r.get("latency_us", {}).get(p) for r in b]) for p in ("p50", "p99")}
            cla, clb = med([r.get("client_cpu_percent") for r in a]), med([r.get("client_cpu_percent") for r in b])
            summary[(srv, w)] = (ra, rb, paired)
            fails = sum(1 for r in a + b if not r.get("ok", True))
            lines.append(f"| {srv}{' (' + str(fails) + ' failed runs)' if fails else ''} | {w} | {fmt(ra)} | {fmt(rb)} | "
                         f"{(rb / ra if ra and rb else 0):.2f}× | {paired or 0:.2f}× | {fmt(la['p50'])}/{fmt(la['p99'])} | "
                         f"{fmt(lb['p50'])}/{fmt(lb['p99'])} | {fmt(ca, 3)} | {fmt(cb, 3)} | "
                         f"{fmt(1000 * (cb - ca) if ca is not None and cb is not None else None)} | {fmt(cla)}% / {fmt(clb)}% | "
                         f"{', '.join(f'{(rate(r) or 0) / 1e6:.2f}' for r in a)} | {', '.join(f'{(rate(r) or 0) / 1e6:.2f}' for r in b)} |")
    lines += ["", "Target of the issue: relay over TLS within 0.7× of the relay in plain: " +
              "; ".join(f"window {w}: {summary[('relay', w)][2] or 0:.2f}× "
                        f"({'met' if (summary[('relay', w)][2] or 0) >= 0.7 else 'not met'})" for w in TLS_WINDOWS) + ".", "",
              "Server CPU per delivery is the server process's user + system time over the deliveries "
              "(`loadgen --server-pid`, steps of 10 ms over the run); the TLS cost column is wss − ws. "
              "loadgen CPU is the client's share of the machine (it decrypts what the server encrypts, on the same cores).", ""]
    # Latency at a moderate rate.
    lines += [f"## Latency at a moderate rate: 1→100 at {MODERATE_RATE} frames/s ({MODERATE_RATE * 100:,} deliveries/s), 128 B", "",
              "| server | ws p50/p90/p99/p99.9 µs | wss p50/p90/p99/p99.9 µs | server CPU µs/delivery ws / wss | reach ws / wss |",
              "|---|---|---|---|---|"]
    for srv in ("relay", "nats"):
        a, b = lat.get((srv, "ws"), []), lat.get((srv, "wss"), [])
        def pc(rs):
            return "/".join(fmt(med([r.get("latency_us", {}).get(p) for r in rs])) for p in ("p50", "p90", "p99", "p999"))
        def reach(rs):
            v = med([r.get("reach") for r in rs])
            return f"{100 * v:.2f}%" if v is not None else "-"
        lines.append(f"| {srv} | {pc(a)} | {pc(b)} | {fmt(med([r.get('server_cpu_us_per_delivery') for r in a]), 3)} / "
                     f"{fmt(med([r.get('server_cpu_us_per_delivery') for r in b]), 3)} | {reach(a)} / {reach(b)} |")
    # Handshakes.
    lines += ["", f"## New TLS connections per second (`openssl s_time`, {opts.handshake_procs} processes at once, {hs_seconds:g} s)", "",
              "`openssl s_time -connect 127.0.0.1:PORT -time N [-new | -reuse] [-tls1_2] [-www /health]`: each "
              "connection is a TCP connect, a TLS handshake and a close (with `-www`, also an HTTP/1.0 GET read to the "
              "end). Against the TLS ports of the relay and of nats-server's WebSocket listener (Go crypto/tls). "
              "Connections/s is summed over the processes; the servers' CPU is user + system over the run "
              "(% of one core); \"resumed (s_time)\" counts s_time's own marks ('r' per resumed connection); "
              "the relay's handshakes/resumed/failed are the change in its /stats `tls` counters over the run.", "",
              "| server | mode | TLS | connections/s | server CPU % | server CPU µs/connection | resumed (s_time) | relay /stats: handshakes | resumed | failed |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, version, flags in HANDSHAKE_MODES:
        for srv in ("relay", "nats"):
            rs = hs.get((srv, label, version), [])
            if not rs:
                continue
            conns = med([r["connections"] for r in rs])
            reused = med([r["client_reused"] for r in rs])
            rel_cols = "- | - | -"
            if srv == "relay":
                reasons = {}
                for r in rs:
                    for kk, v in r.get("relay_failure_reasons", {}).items():
                        reasons[kk] = reasons.get(kk, 0) + v
                rel_cols = (f"{fmt(med([r['relay_handshakes'] for r in rs]))} | {fmt(med([r['relay_resumed'] for r in rs]))} | "
                            f"{fmt(med([r['relay_failures'] for r in rs]))}"
                            + (f" ({', '.join(f'{kk}' for kk in reasons)})" if reasons else ""))
            lines.append(f"| {srv} | `{' '.join(flags)}` ({label}) | {version} | {fmt(med([r['per_s'] for r in rs]))} | "
                         f"{fmt(med([r['server_cpu_percent'] for r in rs]))}% | {fmt(med([r['server_cpu_us_per_connection'] for r in rs]))} | "
                         f"{fmt(reused)} of {fmt(conns)} | {rel_cols} |")
    lines += ["", "(Medians per column, so a row's columns may come from different repetitions.)", ""]
    r13 = hs.get(("relay", "new", "1.3"), [])
    if r13 and med([r.get("relay_failures", 0) for r in r13]) > 0.2 * med([r["connections"] for r in r13]):
        lines += ["The relay counts most TLS 1.3 handshakes of `s_time` as failed (`socket_error`) although they "
                  "completed: s_time closes right after its Finished, and the relay's send of the flight that "
                  "follows the handshake (the session tickets) gets ECONNRESET, which TLSTransport.handshake "
                  "reports as a failed handshake. TLS 1.2 (the server's Finished is its last flight) and "
                  "clients that stay (`-www`) are counted as handshakes.", ""]
    r13 = hs.get(("relay", "reuse", "1.3"), [])
    if r13 and not med([r.get("relay_resumed", 0) for r in r13]):
        lines += ["TLS 1.3 `-reuse` resumes nothing, on either server: s_time reads nothing after the handshake, so it "
                  "never receives the session tickets TLS 1.3 sends after it, and offers none. TLS 1.2 (`-tls1_2`) "
                  "resumes inside the handshake, and TLS 1.3 resumes when s_time reads a response (`-www /health`): "
                  "both confirmed by the relay's /stats `tls.resumed` and by s_time's own marks.", ""]
    # Callgrind.
    if cg:
        lines += [f"## What TLS costs in instructions: the relay under callgrind", "",
                  f"One relay under `valgrind --tool=callgrind` (a copy without debug info: valgrind 3.19 cannot read "
                  f"Swift 6's DWARF 5), `loadgen fanout --pods 1 --subscribers 100 --size 128 --max --window 32` over "
                  f"ws:// and over wss://; the counters are zeroed once every connection is up (+2 s) and dumped "
                  f"{opts.callgrind_seconds:g} s later (`Benchmarks/ab.py` `callgrind_steady`), over the relay's own "
                  f"`relay_deliveries_total` for the same span: steady state only, no start-up, handshakes or shutdown. "
                  f"User space only (the kernel's share of send/recv is not counted). Under valgrind the relay runs "
                  f"~50× slower on one serialized thread, so the batching (frames per flush, records per flush) is "
                  f"not the native one; valgrind also hides AVX-512 from OpenSSL (OpenSSL 3.0 uses its AVX "
                  f"AES-NI + PCLMULQDQ GCM path both ways).", "",
                  "| relay | Ir | deliveries | Ir per delivery |", "|---|---|---|---|"]
        for scheme in ("ws", "wss"):
            c = cg[scheme]
            lines.append(f"| {scheme}:// | {c['ir']:,} | {c['deliveries']:,.0f} | {c['ir'] / max(c['deliveries'], 1):,.0f} |")
        if "wss" in cg:
            c = cg["wss"]
            cats, named = callgrind_breakdown(c["file"], c["ir"])
            per = max(c["deliveries"], 1)
            arcs = callgrind_arcs(c["file"])
            calls = callgrind_calls(arcs)
            inc = callgrind_inclusive(c["file"])
            lines += ["", "wss:// run, the TLS path (inclusive Ir: each row includes the rows indented under it):", "",
                      "| function | calls | Ir per call | Ir per delivery | share of all |", "|---|---|---|---|---|"]
            for label, pat in TLS_PATH:
                names = [n for n in inc if (n == pat if not pat.startswith("^") else re.match(pat, n))]
                if not names:
                    continue
                n_ir = max(inc[n] for n in names)
                n_calls = max(calls.get(n, 0) for n in names)
                depth = (len(label) - len(label.lstrip())) // 2
                lines.append(f"| {'&nbsp;&nbsp;' * depth}{'↳ ' if depth else ''}{label.strip()} | {n_calls:,} | {(n_ir / n_calls if n_calls else 0):,.0f} | "
                             f"{n_ir / per:,.1f} | {100 * n_ir / c['ir']:.1f}% |")
            ssl_writes = calls.get("SSL_write_ex", 0)
            if ssl_writes:
                lines += ["", f"{c['deliveries'] / ssl_writes:.1f} deliveries per record (SSL_write_ex call): "
                              f"~{c['deliveries'] * 130 / ssl_writes:,.0f} B of WebSocket frames (130 B each) per record "
                              f"under callgrind, where the relay runs far slower than loadgen and each flush finds more queued."]
            # Who copies: memcpy/memmove by caller.
            copies = {}
            for (caller, callee), (n, ir) in arcs.items():
                if callee and re.match(r"_*(memcpy|memmove)", callee.lstrip("_")) or (callee or "").startswith(("__memcpy", "__memmove")):
                    key = caller if caller in ("ctls_write_gathered", "out_write", "ctls_out_flush") else (
                        "OpenSSL internals (libssl/libcrypto: the plaintext into its record buffer, …)"
                        if caller and caller.startswith("0x") or caller in ("WPACKET_memcpy",) else f"`{caller[:80]}`")
                    a = copies.setdefault(key, [0, 0])
                    a[0] += n
                    a[1] += ir
            copy_label = {"ctls_write_gathered": "ctls_write_gathered: queued frames → 16 KiB stage (plaintext)",
                          "out_write": "out_write: ciphertext → the BIO's per-thread scratch",
                          "ctls_out_flush": "ctls_out_flush: unsent ciphertext → the connection's pending buffer"}
            lines += ["", "Copies (memcpy/memmove by caller; libcrypto and libssl have no symbols, so their callers are "
                          "pooled):", "", "| caller | calls | Ir | Ir per delivery |", "|---|---|---|---|"]
            for key, (n, ir) in sorted(copies.items(), key=lambda kv: -kv[1][1]):
                if ir / per < 0.05:
                    continue
                lines.append(f"| {copy_label.get(key, key)} | {n:,} | {ir:,} | {ir / per:.1f} |")
            lines += ["", "wss:// run, self Ir by kind of function (addresses in libcrypto told apart by their "
                          "instructions, see CG_CATEGORIES in compare.py):", "",
                      "| kind | Ir per delivery | share |", "|---|---|---|"]
            for name, ir in sorted(cats.items(), key=lambda kv: -kv[1]):
                if ir:
                    lines.append(f"| {name} | {ir / per:,.0f} | {100 * ir / c['ir']:.1f}% |")
            lines += ["", "Top functions of the wss:// run by self Ir (addresses in libcrypto/libssl are internal "
                          "functions without symbols; `AES-GCM` marks those whose code is vaesenc/vpclmulqdq):", "",
                      "| Ir | Ir per delivery | function | object |", "|---|---|---|---|"]
            for ir, fn, obj in named[:25]:
                tag = " (AES-GCM)" if fn in AES_GCM_ADDRS else ""
                lines.append(f"| {ir:,} | {ir / per:.1f} | `{fn[:110]}`{tag} | {obj} |")
        if "ws" in cg:
            c = cg["ws"]
            cats, named = callgrind_breakdown(c["file"], c["ir"])
            per = max(c["deliveries"], 1)
            lines += ["", "ws:// run for comparison, top 10 by self Ir:", "", "| Ir per delivery | function | object |", "|---|---|---|"]
            for ir, fn, obj in named[:10]:
                lines.append(f"| {ir / per:.1f} | `{fn[:110]}` | {obj} |")
        lines.append("")
    raw = {"fanout": {f"{s} {sc} window {w}": [{kk: vv for kk, vv in r.items() if kk != "latency_histogram"} for r in rs]
                      for (s, sc, w), rs in fan.items()},
           "latency": {f"{s} {sc}": [{kk: vv for kk, vv in r.items() if kk != "latency_histogram"} for r in rs]
                       for (s, sc), rs in lat.items()},
           "handshakes": {f"{s} {lb} TLS {v}": rs for (s, lb, v), rs in hs.items()},
           "callgrind": {sc: {kk: vv for kk, vv in c.items() if kk in ("ir", "deliveries")} for sc, c in cg.items()}}
    lines += ["Raw JSON of every run:", "", "```json", json.dumps(raw, indent=1), "```", ""]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(TLS_WINDOWS), figsize=(5 * len(TLS_WINDOWS), 4.2))
        for ax, w in zip(axes, TLS_WINDOWS):
            for i, (scheme, color) in enumerate((("ws", "tab:blue"), ("wss", "tab:orange"))):
                xs = [x + (i - 0.5) * 0.38 for x in range(2)]
                vals = [[(rate(r) or 0) / 1e6 for r in fan.get((srv, scheme, w), [])] for srv in ("relay", "nats")]
                meds = [statistics.median(v) if v else 0 for v in vals]
                lo = [mm - min(v) if v else 0 for mm, v in zip(meds, vals)]
                hi = [max(v) - mm if v else 0 for mm, v in zip(meds, vals)]
                ax.bar(xs, meds, width=0.38, yerr=[lo, hi], capsize=3, color=color,
                       label=f"{scheme}://" + (" (TLS)" if scheme == "wss" else " (plain)"))
                if scheme == "wss":
                    for x, srv, mm, v in zip(xs, ("relay", "nats"), meds, vals):
                        ratio = summary.get((srv, w), (None, None, None))[2]
                        if ratio:
                            ax.annotate(f"{ratio:.2f}×", (x, max(v) if v else mm), textcoords="offset points",
                                        xytext=(0, 5), ha="center", fontsize=9)
            ax.set_xticks(range(2), ["relay", "nats-server"])
            ax.set_title(f"fan-out 1→100, 128 B, window {w}", fontsize=10)
            ax.set_ylabel("million deliveries/s (median, bars: min–max)")
            ax.set_ylim(bottom=0)
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("plain vs TLS (label: TLS ÷ plain, median of paired runs)", fontsize=10)
        fig.tight_layout()
        fig.savefig(base + ".png", dpi=100)
        fig, ax = plt.subplots(figsize=(9, 4))
        labels = [f"{label}\nTLS {version}" for label, version, _ in HANDSHAKE_MODES]
        for i, (srv, color) in enumerate((("relay", "tab:green"), ("nats", "tab:gray"))):
            vals = [med([r["per_s"] for r in hs.get((srv, label, version), [])]) or 0 for label, version, _ in HANDSHAKE_MODES]
            ax.bar([x + (i - 0.5) * 0.38 for x in range(len(labels))], vals, width=0.38, color=color, label=srv)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel("connections/s (openssl s_time)")
        ax.set_title(f"new TLS connections/s, {opts.handshake_procs} s_time processes", fontsize=10)
        ax.legend()
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(base + "-handshakes.png", dpi=100)
        images = [("deliveries/s plain vs TLS", ".png"), ("TLS connections/s", "-handshakes.png")]
    except ImportError:
        images = None
    write_report(base, lines, 2, images)
    log(f"wrote {base}.md (callgrind files kept in {tmp}/callgrind)")


if __name__ == "__main__":
    main()
