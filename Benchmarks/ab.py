#!/usr/bin/env python3
"""Before/after for a hot-path change: two relay binaries measured by the
same loadgen, interleaved (A B A B …), medians reported.

    .venv/bin/python Benchmarks/ab.py A_RELAY B_RELAY [--runs 5] [--duration 5]
        [--subscribers 100] [--windows 32,1000] [--size 128] [--callgrind]
        [--a-args ARGS] [--b-args ARGS] [--a-loadgen-args ARGS] [--b-loadgen-args ARGS]
        [--callgrind-steady SECONDS] [--callgrind-window W] [--callgrind-keep DIR]

Wall clock: deliveries/s of `loadgen fanout --max` per window, each run a
fresh relay process. A binary named `fanout_server` is the C reference
(`Benchmarks/reference/fanout_server.c`), started with just a port. --callgrind: also one run of each binary under
`valgrind --tool=callgrind`, reported as the relay's user-space instructions
per delivery (repeatable on a noisy machine, unlike seconds).
--callgrind-steady S counts only S seconds of steady state instead of the
whole process: the counters are zeroed once the relay's /metrics shows
every connection up, and dumped S seconds later, over the relay's own
relay_deliveries_total for the same span (no start-up, TLS handshakes or
shutdown in the figure; relay binaries only, not fanout_server).
--callgrind-keep DIR keeps the callgrind files and prints each one's top
functions (callgrind_annotate).
TLS: `--b-args "--tls --tls-cert C --tls-key K" --b-loadgen-args "--tls --insecure"`
(an A/B of the same binary over ws:// and wss://).
Loopback only; every process it starts is stopped before it exits.
"""
import argparse, json, os, re, shutil, signal, socket, ssl, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, logger, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADGEN = os.environ.get("LOADGEN_BIN", os.path.join(ROOT, ".build/release/loadgen"))
SECRET = "ab-secret"


log = logger("ab")


def start(relay, prefix=(), extra=()):
    port = free_port()
    if os.path.basename(relay) == "fanout_server":
        # The C reference (Benchmarks/reference): only a port.
        argv = [relay, str(port)]
    else:
        argv = [relay, "--port", str(port), "--host", "127.0.0.1", "--jwt-secret", SECRET,
                "--log-level", "warning", "--max-browsers-per-pod", "100000"] + list(extra)
    p = subprocess.Popen(list(prefix) + argv,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port, 60)
    return p, port


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=60)
    except Exception:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def fanout(port, pid, window, args, tmp, extra=()):
    out = os.path.join(tmp, f"r{time.time_ns()}.json")
    cmd = [LOADGEN, "fanout", "--url", f"ws://127.0.0.1:{port}", "--secret", SECRET, "--server-pid", str(pid),
           "--pods", "1", "--subscribers", str(args.subscribers), "--size", str(args.size), "--max",
           "--window", str(window), "--duration", str(args.duration), "--json", out, "--quiet"]
    if getattr(args, "warmup", None) is not None:
        cmd += ["--warmup", str(args.warmup)]
    cmd += list(extra)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    with open(out) as f:
        return json.load(f)


def _tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def admin_connection(port, tls):
    """A connection to the relay, TLS handshake done, no request sent yet."""
    s = socket.create_connection(("127.0.0.1", port), 60)
    return _tls_context().wrap_socket(s) if tls else s


def metrics(port, tls, conn=None):
    """The relay's /metrics as {"name{labels}": value}: on `conn` (from
    admin_connection, used up: the relay closes after one admin answer) or
    a new connection."""
    s = conn or admin_connection(port, tls)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    text = data.decode(errors="replace").partition("\r\n\r\n")[2]
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line:
            k, v = line.rsplit(" ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def callgrind_tool():
    return shutil.which("callgrind_control") or "callgrind_control"


def callgrind_steady(relay, relay_args, loadgen_args, window, subscribers, size, seconds, out_file, tmp,
                     settle=2.0):
    """The relay under callgrind, counting only `seconds` of steady fan-out:
    counters zeroed once every connection is up (and `settle` seconds more),
    dumped `seconds` later. Returns (Ir, deliveries, part file): deliveries
    from the relay's relay_deliveries_total, read on both sides of the zero
    and of the dump (their mean), so the scrapes' own latency cancels out."""
    tls = "--tls" in relay_args
    for f in os.listdir(os.path.dirname(out_file) or "."):
        if f == os.path.basename(out_file) or f.startswith(os.path.basename(out_file) + "."):
            os.remove(os.path.join(os.path.dirname(out_file) or ".", f))
    stripped = os.path.join(tmp, f"relay-cg-{time.time_ns()}")
    # valgrind 3.19 cannot read the DWARF 5 that Swift 6 emits: a copy without debug info (symbols stay).
    subprocess.run(["objcopy", "--strip-debug", relay, stripped], check=True)
    # --handshake-timeout: an admin connection opened before the span waits
    # the span out before its request.
    p, port = start(stripped, prefix=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"),
                    extra=list(relay_args) + ["--handshake-timeout", "600s"])
    lg = None
    try:
        cmd = [LOADGEN, "fanout", "--url", f"ws://127.0.0.1:{port}", "--secret", SECRET,
               "--pods", "1", "--subscribers", str(subscribers), "--size", str(size), "--max",
               "--window", str(window), "--duration", "3600", "--warmup", "0", "--connect-timeout", "300",
               "--quiet"] + list(loadgen_args)
        lg = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while True:
            m = metrics(port, tls)
            if (m.get('relay_connections{role="browser"}', 0) >= subscribers
                    and m.get('relay_connections{role="runner"}', 0) >= 1
                    and m.get("relay_deliveries_total", 0) > 0):
                break
            if time.time() > deadline or lg.poll() is not None:
                raise RuntimeError("loadgen never got every connection up under callgrind")
            time.sleep(0.5)
        time.sleep(settle)
        # The two scrapes inside the span go over connections opened (and,
        # for TLS, handshaken) before it: only their requests are counted.
        c0b, c1a = admin_connection(port, tls), admin_connection(port, tls)
        d0a = metrics(port, tls)["relay_deliveries_total"]
        subprocess.run([callgrind_tool(), "-z", str(p.pid)], check=True, stdout=subprocess.DEVNULL)
        d0b = metrics(port, tls, c0b)["relay_deliveries_total"]
        time.sleep(seconds)
        d1a = metrics(port, tls, c1a)["relay_deliveries_total"]
        subprocess.run([callgrind_tool(), "-d", str(p.pid)], check=True, stdout=subprocess.DEVNULL)
        d1b = metrics(port, tls)["relay_deliveries_total"]
    finally:
        try:
            if lg is not None and lg.poll() is None:
                # Its result is not needed (the relay's counters are the figure);
                # loadgen does not stop on SIGTERM.
                lg.kill()
                lg.wait(60)
        finally:
            stop(p)
    # The dump is the first part file: <out>.1.
    parts = sorted(f for f in os.listdir(os.path.dirname(out_file) or ".")
                   if f.startswith(os.path.basename(out_file) + "."))
    part = os.path.join(os.path.dirname(out_file) or ".", parts[0]) if parts else out_file
    return callgrind_total(part), (d1a + d1b) / 2 - (d0a + d0b) / 2, part


def callgrind_total(path):
    total = 0
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return total


def callgrind_top(path, n=25):
    """(Ir, function, object) of the `n` functions with the most Ir (self cost)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", f"--threshold=100", path],
                         capture_output=True, text=True).stdout
    total = callgrind_total(path)
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line) or re.match(r"^\s*([\d,]+)\s+(\S.*)$", line)
        if not m or ":" not in m.group(2):
            continue
        if int(m.group(1).replace(",", "")) >= 0.9 * total:
            continue  # thread roots (clone, start_thread, the loop): a mid-run dump gives them everything
        where, _, fn = m.group(2).partition(":")
        obj = ""
        if " [" in fn:
            fn, _, obj = fn.rpartition(" [")
            obj = os.path.basename(obj.rstrip("]"))
        rows.append((int(m.group(1).replace(",", "")), fn.strip(), obj or os.path.basename(where)))
        if len(rows) >= n:
            break
    return rows


def rate(result):
    return result["delivered"] / result["duration_s"] if result.get("duration_s") else result.get("deliveries_per_s", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=5, help="interleaved wall-clock runs (0: callgrind only)")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--windows", default="32,1000")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--a-args", default="", help="extra relay flags for A (e.g. '--browser-placement accept')")
    ap.add_argument("--b-args", default="", help="extra relay flags for B")
    ap.add_argument("--a-loadgen-args", default="", help="extra loadgen flags for A (e.g. '--tls --insecure')")
    ap.add_argument("--b-loadgen-args", default="", help="extra loadgen flags for B")
    ap.add_argument("--callgrind-window", type=int, default=32)
    ap.add_argument("--callgrind-steady", type=float, default=0,
                    help="count only this many seconds of steady state (0: the whole 3 s run, start-up included)")
    ap.add_argument("--callgrind-keep", help="directory to keep the callgrind files in; prints their top functions")
    args = ap.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    binaries = {"A": args.a, "B": args.b}
    extras = {"A": args.a_args.split(), "B": args.b_args.split()}
    lg_extras = {"A": args.a_loadgen_args.split(), "B": args.b_loadgen_args.split()}
    rates = {(k, w): [] for k in binaries for w in windows}
    cpu = {(k, w): [] for k in binaries for w in windows}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for w in windows:
                for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
                    p, port = start(binaries[k], extra=extras[k])
                    try:
                        r = fanout(port, p.pid, w, args, tmp, lg_extras[k])
                    finally:
                        stop(p)
                    rates[(k, w)].append(r["deliveries_per_s"])
                    if r.get("server_cpu_us_per_delivery") is not None:
                        cpu[(k, w)].append(r["server_cpu_us_per_delivery"] * 1000)
                    log(f"run {i + 1}/{args.runs} window {w} {k}: {r['deliveries_per_s'] / 1e6:.2f} M deliveries/s")
        print()
        print(f"1 pod → {args.subscribers} subscribers, {args.size} B frames, medians of {args.runs} interleaved runs")
        print(f"A = {args.a} {args.a_args} {('(loadgen ' + args.a_loadgen_args + ')') if args.a_loadgen_args else ''}".rstrip())
        print(f"B = {args.b} {args.b_args} {('(loadgen ' + args.b_loadgen_args + ')') if args.b_loadgen_args else ''}".rstrip())
        if args.runs > 0:
            print("| window | A (M/s) | B (M/s) | B/A | A server CPU ns/delivery | B server CPU ns/delivery | B/A |")
            print("|---|---|---|---|---|---|---|")
            for w in windows:
                a, b = statistics.median(rates[("A", w)]), statistics.median(rates[("B", w)])
                ca = statistics.median(cpu[("A", w)]) if cpu[("A", w)] else float("nan")
                cb = statistics.median(cpu[("B", w)]) if cpu[("B", w)] else float("nan")
                print(f"| {w} | {a / 1e6:.2f} | {b / 1e6:.2f} | {b / a:.3f} | {ca:.0f} | {cb:.0f} | {cb / ca:.3f} |")
        if args.callgrind:
            cgdir = args.callgrind_keep or tmp
            os.makedirs(cgdir, exist_ok=True)
            what = (f"{args.callgrind_steady:g} s of steady state" if args.callgrind_steady
                    else "whole process")
            rows = []
            for k in ("A", "B"):
                cg = os.path.join(cgdir, f"cg-{k}.out")
                if args.callgrind_steady:
                    total, delivered, part = callgrind_steady(
                        binaries[k], extras[k], lg_extras[k], args.callgrind_window, args.subscribers, args.size,
                        args.callgrind_steady, cg, tmp)
                else:
                    # valgrind 3.19 cannot read the DWARF 5 that Swift 6 emits:
                    # a copy without debug info (symbols stay).
                    stripped = os.path.join(tmp, f"relay-{k}")
                    subprocess.run(["objcopy", "--strip-debug", binaries[k], stripped], check=True)
                    p, port = start(stripped, prefix=("valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"), extra=extras[k])
                    try:
                        r = fanout(port, p.pid, args.callgrind_window,
                                   argparse.Namespace(**{**vars(args), "duration": 3, "warmup": 0}), tmp, lg_extras[k])
                    finally:
                        stop(p)
                    total, delivered, part = callgrind_total(cg), r["delivered"], cg
                log(f"callgrind {k}: {total} Ir, {delivered:.0f} deliveries")
                rows.append((k, total / max(delivered, 1), part))
            print()
            print(f"| callgrind (window {args.callgrind_window}, {what}) | Ir per delivery |")
            print("|---|---|")
            for k, per, _ in rows:
                print(f"| {k} | {per:.0f} |")
            if args.callgrind_keep:
                for k, _, part in rows:
                    print()
                    print(f"{k}: {part}, top functions by Ir (self)")
                    for ir, fn, obj in callgrind_top(part):
                        print(f"  {ir:>14,}  {fn}  [{obj}]")


if __name__ == "__main__":
    main()
