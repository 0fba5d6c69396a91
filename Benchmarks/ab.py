#!/usr/bin/env python3
"""Before/after for a hot-path change: two relay binaries measured by the
same loadgen, interleaved (A B A B …), medians reported.

    .venv/bin/python Benchmarks/ab.py A_RELAY B_RELAY [--runs 5] [--duration 5]
        [--subscribers 100] [--windows 32,1000] [--size 128] [--callgrind]

Wall clock: deliveries/s of `loadgen fanout --max` per window, each run a
fresh relay process. A binary named `fanout_server` is the C reference
(`Benchmarks/reference/fanout_server.c`), started with just a port. --callgrind: also one run of each binary under
`valgrind --tool=callgrind`, reported as the relay's user-space instructions
per delivery (repeatable on a noisy machine, unlike seconds).
Loopback only; every process it starts is stopped before it exits.
"""
import argparse, json, os, re, signal, socket, statistics, subprocess, sys, tempfile, time

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


def fanout(port, pid, window, args, tmp):
    out = os.path.join(tmp, f"r{time.time_ns()}.json")
    cmd = [LOADGEN, "fanout", "--url", f"ws://127.0.0.1:{port}", "--secret", SECRET, "--server-pid", str(pid),
           "--pods", "1", "--subscribers", str(args.subscribers), "--size", str(args.size), "--max",
           "--window", str(window), "--duration", str(args.duration), "--json", out, "--quiet"]
    if getattr(args, "warmup", None) is not None:
        cmd += ["--warmup", str(args.warmup)]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    with open(out) as f:
        return json.load(f)


def rate(result):
    return result["delivered"] / result["duration_s"] if result.get("duration_s") else result.get("deliveries_per_s", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--windows", default="32,1000")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--a-args", default="", help="extra relay flags for A (e.g. '--browser-placement accept')")
    ap.add_argument("--b-args", default="", help="extra relay flags for B")
    args = ap.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    binaries = {"A": args.a, "B": args.b}
    extras = {"A": args.a_args.split(), "B": args.b_args.split()}
    rates = {(k, w): [] for k in binaries for w in windows}
    cpu = {(k, w): [] for k in binaries for w in windows}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for w in windows:
                for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
                    p, port = start(binaries[k], extra=extras[k])
                    try:
                        r = fanout(port, p.pid, w, args, tmp)
                    finally:
                        stop(p)
                    rates[(k, w)].append(r["deliveries_per_s"])
                    if r.get("server_cpu_us_per_delivery") is not None:
                        cpu[(k, w)].append(r["server_cpu_us_per_delivery"] * 1000)
                    log(f"run {i + 1}/{args.runs} window {w} {k}: {r['deliveries_per_s'] / 1e6:.2f} M deliveries/s")
        print()
        print(f"1 pod → {args.subscribers} subscribers, {args.size} B frames, medians of {args.runs} interleaved runs")
        print(f"A = {args.a} {args.a_args}".rstrip())
        print(f"B = {args.b} {args.b_args}".rstrip())
        print("| window | A (M/s) | B (M/s) | B/A | A server CPU ns/delivery | B server CPU ns/delivery | B/A |")
        print("|---|---|---|---|---|---|---|")
        for w in windows:
            a, b = statistics.median(rates[("A", w)]), statistics.median(rates[("B", w)])
            ca = statistics.median(cpu[("A", w)]) if cpu[("A", w)] else float("nan")
            cb = statistics.median(cpu[("B", w)]) if cpu[("B", w)] else float("nan")
            print(f"| {w} | {a / 1e6:.2f} | {b / 1e6:.2f} | {b / a:.3f} | {ca:.0f} | {cb:.0f} | {cb / ca:.3f} |")
        if args.callgrind:
            print()
            print("| callgrind (window 32) | Ir per delivery |")
            print("|---|---|")
            for k in ("A", "B"):
                cg = os.path.join(tmp, f"cg-{k}.out")
                # valgrind 3.19 cannot read the DWARF 5 that Swift 6 emits:
                # a copy without debug info (symbols stay).
                stripped = os.path.join(tmp, f"relay-{k}")
                subprocess.run(["objcopy", "--strip-debug", binaries[k], stripped], check=True)
                p, port = start(stripped, prefix=("valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"), extra=extras[k])
                try:
                    r = fanout(port, p.pid, 32, argparse.Namespace(**{**vars(args), "duration": 3, "warmup": 0}), tmp)
                finally:
                    stop(p)
                total = 0
                with open(cg) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            total = int(line.split()[1])
                per = total / max(r["delivered"], 1)
                log(f"callgrind {k}: {total} Ir, {r['delivered']} deliveries")
                print(f"| {k} | {per:.0f} |")


if __name__ == "__main__":
    main()
