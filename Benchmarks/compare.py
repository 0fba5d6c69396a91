#!/usr/bin/env python3
"""Side-by-side benchmark: this relay against nats-server (WebSocket, no TLS),
measured with the same client (`loadgen`) in one run on loopback; for the
fan-out runs also against a minimal C WebSocket fan-out server
(Benchmarks/reference/fanout_server.c) and the kernel floor (Benchmarks/floor).

Usage: .venv/bin/python Benchmarks/compare.py [--quick]
Writes Benchmarks/results/<date>-<host>.md and PNG plots beside it.
Needs release builds of relay and loadgen (make bench builds them) and
nats-server (installed with apt if absent); a C compiler and libcrypto
(libssl-dev) for the C columns, which are left out without them.
RELAY_BIN and LOADGEN_BIN override the binaries (default .build/release/…),
C_BUILD_DIR where the C programs are built (default .build).
"""
import argparse, datetime, json, os, platform, re, shutil, signal, socket, subprocess, sys, tempfile, time

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


def start_relay():
    port = free_port()
    p = subprocess.Popen([RELAY, "--port", str(port), "--host", "127.0.0.1", "--jwt-secret", SECRET,
                          "--echo-endpoint", "--log-level", "warning", "--max-browsers-per-pod", "100000"],
                         stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return p, port


def start_reference():
    port = free_port()
    p = subprocess.Popen([REFERENCE, str(port)], stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return p, port


def start_nats(tmp):
    port, ws = free_port(), free_port()
    conf = os.path.join(tmp, "nats.conf")
    with open(conf, "w") as f:
        f.write(f"host: 127.0.0.1\nport: {port}\nwebsocket {{ host: 127.0.0.1, port: {ws}, no_tls: true }}\n"
                "max_payload: 1048576\nmax_pending: 67108864\n")
    p = subprocess.Popen(["nats-server", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    wait_port(ws)
    return p, ws


# The loadgen --target each measured server is driven as: the C reference
# speaks the relay's paths and frames.
LOADGEN_TARGET = {"ref": "relay"}


def loadgen(scenario, target, port, pid, args, duration, tmp):
    out = os.path.join(tmp, f"{scenario}-{target}-{time.time_ns()}.json")
    kind = LOADGEN_TARGET.get(target, target)
    cmd = [LOADGEN, scenario, "--target", kind, "--url", f"ws://127.0.0.1:{port}", "--secret", SECRET,
           "--server-pid", str(pid), "--duration", str(duration), "--json", out, "--quiet"] + args
    log(" ".join(os.path.basename(c) if c == LOADGEN else c for c in cmd[:2] + cmd[3:5] + args)
        + ("" if kind == target else f"  (the C reference, {REFERENCE})"))
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
    opts = ap.parse_args()
    d = 2 if opts.quick else 5
    for exe in (RELAY, LOADGEN):
        if not os.path.exists(exe):
            sys.exit(f"missing {exe}: run `swift build -c release` first")
    ensure_nats()
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
        lines[4:4] = [f"![deliveries/s against window]({os.path.basename(base)}-fanout.png) "
                      f"![deliveries/s against fan-out]({os.path.basename(base)}-scaling.png) "
                      f"![latency percentiles]({os.path.basename(base)}-latency.png)", ""]
    except ImportError:
        lines.insert(4, "(matplotlib missing: no plots)")
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {base}.md")


def nats_version():
    try:
        return subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
