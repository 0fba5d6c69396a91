#!/usr/bin/env python3
"""The permessage-deflate section of compare.py (`compare.py --compression [--reps N] [--quick]`).

`loadgen` cannot measure compression: its WebSocket client offers no
extension and its payloads are synthetic stamped frames. This section drives
the relay with a recorded terminal session instead
(Benchmarks/traces/terminal.trace, made by traces/make_trace.py: PTY reads
of up to 4096 bytes, one runner frame `[0x02][chunk]` each) through three
clients of its own:

- `deflate/pmd_fanout.c` (built with cc into C_BUILD_DIR): one runner and
  100 browsers on one pod, epoll, one thread; the browsers offer
  permessage-deflate as every browser does and parse frame headers only, so
  the driver's cost is the same whether frames come compressed or not;
- Python `websockets` clients (a real, independent permessage-deflate
  implementation on zlib) for the correctness check, the wire bytes, the
  idle connections and the attach runs;
- `loadgen` for the uncompressed path (it never offers the extension).

One run on loopback, interleaved (each repetition rotates the order and
reverses it every other time), medians of --reps:

0. `deflate/deflate_compare.c`: zlib (deflateReset per message,
   Z_SYNC_FLUSH, raw, levels 1 and 6) against libdeflate (one-shot, levels
   1, 6, 9) on the trace's messages, each on its own as the relay does, plus
   zlib with context takeover for what sharing gives up; compress and
   inflate speed, ratio, state bytes (its own medians of 5 runs).
1. Check and wire bytes: a Python runner sends the whole trace once to a
   compressing and a non-compressing `websockets` browser of one pod (relay
   `--compression shared`) and to a browser whose offer a `--compression
   off` relay declines; every message is compared with the trace; the bytes
   each browser's socket read are counted, with the relay's /metrics.
2. Fan-out 1→100 with `pmd_fanout` against `--compression shared` and
   `--compression off` (browsers offer in both): closed loop at windows 32
   and 1000 (as `loadgen fanout --max`), and open loop at a fixed rate
   (the relay's CPU at equal work): deliveries/s, the relay's CPU per
   delivery (/proc/PID/stat), bytes on the wire per delivery (what the
   browsers' sockets read), compressions per runner frame (/metrics).
3. Idle connections: a fresh relay per measurement, warmed up (16
   compressing pods, so each loop's compressor has touched its work area),
   then N browsers (9 per pod, each pod with a runner) that negotiated
   compression and N that did not (Python; every browser gets one message
   from its runner), and `loadgen connections` for the same N with and
   without `--compression` (the relay's existing ≤ 1 KiB target);
   VmRSS growth / connections.
4. Attach with a full replay ring: the runner fills the ring with the trace,
   then browsers join one at a time and each receives the ring; the relay's
   CPU per join, shared vs off.
5. `loadgen fanout` 1→100, 128 B, window 32 against both relays, without
   and with `loadgen --compression`: clients that do not offer compression
   must not pay for it; the machinery's cost when every client does.
6. Pod churn: rounds of short-lived pods (a runner, one browser, one
   message, both leave) on fresh relays with short pod timers, compressing
   browsers against plain ones: the relay's RSS and VmSize after each round
   (what ended pods leave behind); and one pod whose extended browsers get
   Presence while another browser joins and leaves, over and over.

Writes Benchmarks/results/<date>-compression.md and <date>-compression.png.

    .venv/bin/python Benchmarks/compressionbench.py --report-from STATE.pickle
writes the report again from a run's saved measurements.
"""
import argparse, asyncio, base64, datetime, hashlib, hmac, json, os, pickle, resource, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402
import http2bench as H  # noqa: E402
from benchlib import free_port, logger, wait_port  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "traces"))
from make_trace import read_trace  # noqa: E402

log = logger("compression")

TRACE = os.path.join(C.ROOT, "Benchmarks/traces/terminal.trace")
DEFLATE_SRC = os.path.join(C.ROOT, "Benchmarks/deflate/deflate_compare.c")
DEFLATE = os.path.join(C.C_BUILD, "deflate_compare")
FANOUT_SRC = os.path.join(C.ROOT, "Benchmarks/deflate/pmd_fanout.c")
FANOUT = os.path.join(C.C_BUILD, "pmd_fanout")

MODES = ("shared", "off")
# deflate_compare's configuration that is the relay's own compressor
# (PerMessageDeflateCodec: zlib, raw, memLevel 8, level 6, reset and sync
# flush per message; it used libdeflate 6 before 00a7047).
RELAY_COMPRESSOR = "zlib 6"
WINDOWS = (32, 1000)
# Open-loop rate of part 2: frames/s into the pod (×100 deliveries). Each
# frame then leaves on its own (one write per browser per frame: ~2 µs of
# relay CPU per delivery), so 5000/s already saturates a loop; 1000/s is
# well below what either mode sustains, and both do the same work.
RATE = 1000
SUBSCRIBERS = 100
IDLE_VARIANTS = ("compressing", "uncompressed", "loadgen --compression", "loadgen")
# The relay's existing target for an idle subscribed connection.
IDLE_TARGET = 1024


# MARK: helpers

def build(src, exe, libs):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return False
    os.makedirs(C.C_BUILD, exist_ok=True)
    return subprocess.run([cc, "-O2", "-o", exe, src] + libs).returncode == 0


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(pod, user_id):
    """An HS256 token as loadgen mints them (user_id 0: a runner)."""
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps({"pod_key": pod, "runner_id": 1, "user_id": user_id, "org_id": 1, "exp": now + 3600,
                           "iat": now, "iss": "agentsmesh-relay", "sub": pod}, separators=(",", ":")).encode())
    sig = b64(hmac.new(C.SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def cpu_ns(pid):
    """CPU time of every thread of `pid` so far, in ns (/proc/PID/task/*/schedstat:
    nanosecond resolution, where /proc/PID/stat counts 10 ms ticks)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


COMPRESSION_METRICS = {"compressions": "relay_compressions_total",
                       "compression_bytes_in": "relay_compression_bytes_in_total",
                       "compression_bytes_out": "relay_compression_bytes_out_total",
                       "bytes_out": "relay_bytes_out_total", "bytes_in": "relay_bytes_in_total"}


def metric_deltas(before, after):
    d = H.metric_deltas(before, after)
    if d is not None:
        d.update({k: after.get(m, 0) - before.get(m, 0) for k, m in COMPRESSION_METRICS.items()})
        d["compression_connections"] = after.get("relay_compression_connections")
    return d


class GaugePoller:
    """Samples the relay's relay_compression_connections every 0.25 s while a
    client runs (loadgen's connections are closed by the time it returns)."""

    def __init__(self, port):
        import threading
        self.port, self.max = port, 0.0
        self.stop_ = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_.wait(0.25):
            v = (H.relay_metrics(self.port, False) or {}).get("relay_compression_connections")
            if v is not None:
                self.max = max(self.max, v)

    def done(self):
        self.stop_.set()
        self.thread.join(5)
        return self.max


class Relays:
    """Relays by name ('shared', 'off', or fresh ones), each logging to a file; a
    relay that died is noted and started again."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}
        self.deaths = []
        self.logs = []

    def start(self, name, mode, extra=()):
        path = os.path.join(self.tmp, f"relay-{name}.log")
        self.logs.append(path)
        with open(path, "a") as f:
            p, port = C.start_relay(["--compression", mode] + list(extra), stderr=f)
        self.procs[name] = (p, port, mode)
        return p, port

    def get(self, name, what):
        p, port, mode = self.procs[name]
        if p.poll() is not None:
            self.deaths.append({"relay": name, "exit": p.returncode, "after": what})
            log(f"!! relay {name} (pid {p.pid}) exited with {p.returncode} after {what}: starting it again")
            return self.start(name, mode)
        return p, port

    def stop(self, name=None):
        for n in ([name] if name else list(self.procs)):
            p, _, _ = self.procs.pop(n)
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)


# MARK: Python clients (websockets)

def ws_classes():
    from websockets.asyncio.client import ClientConnection

    class Counting(ClientConnection):
        """A client connection that counts the bytes its socket read."""
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.wire = 0

        def data_received(self, data):
            self.wire += len(data)
            super().data_received(data)
    return Counting


async def ws_connect(port, path, tok, deflate, counting=None, **kw):
    from websockets.asyncio.client import connect
    return await connect(f"ws://127.0.0.1:{port}/{path}/relay?token={tok}", compression="deflate" if deflate else None,
                         max_size=None, ping_interval=None, open_timeout=30, close_timeout=2, proxy=None,
                         create_connection=counting, **kw)


def negotiated(ws):
    return "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")


async def check_run(relays, messages, rep):
    """Part 1: the whole trace once to [shared: a compressing and a plain
    browser] and [off: a browser whose offer is declined]; every message
    compared; socket bytes counted."""
    Counting = ws_classes()
    out = {}
    for relay, browsers in (("shared", (("compressing", True), ("plain", False))), ("off", (("declined", True),))):
        p, port = relays.get(relay, f"check rep {rep}")
        pod = f"check-{rep}-{relay}-{time.time_ns()}"
        before = H.relay_metrics(port, False)
        bs = {}
        for name, offer in browsers:
            ws = await ws_connect(port, "browser", token(pod, 7), offer, Counting)
            bs[name] = {"ws": ws, "offer": offer, "negotiated": negotiated(ws), "base": ws.wire, "got": 0, "bad": 0}
        runner = await ws_connect(port, "runner", token(pod, 0), False)
        cpu0 = cpu_ns(p.pid)
        t0 = time.time()

        async def reader(b):
            ws = b["ws"]
            async for m in ws:
                i = b["got"]
                if i < len(messages) and m != messages[i]:
                    b["bad"] += 1
                b["got"] += 1
                if b["got"] == len(messages):
                    return

        tasks = [asyncio.create_task(reader(b)) for b in bs.values()]
        for i, m in enumerate(messages):
            await runner.send(m)
            # At most 256 frames ahead of the slowest browser.
            while i - min(b["got"] for b in bs.values()) > 256:
                await asyncio.sleep(0.001)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        except asyncio.TimeoutError:
            pass
        wall = time.time() - t0
        cpu = (cpu_ns(p.pid) - cpu0) / 1e9
        after = H.relay_metrics(port, False)
        for b in bs.values():
            await b["ws"].close()
        await runner.close()
        row = {"relay": relay, "wall_s": wall, "relay_cpu_s": cpu, "relay_metrics": metric_deltas(before, after)}
        for name, b in bs.items():
            row[name] = {"offer": b["offer"], "negotiated": b["negotiated"], "messages": b["got"], "mismatches": b["bad"],
                         "wire_bytes": b["ws"].wire - b["base"],
                         "extensions": b["ws"].response.headers.get("Sec-WebSocket-Extensions")}
        out[relay] = row
    return out


async def idle_run(port, n, per_pod, deflate, frame, settle):
    """Part 3: n idle browsers (per_pod per pod, each pod with a runner); every
    runner sends `frame` once and every browser must get it. Returns the
    connections (open) and their counts; the caller reads RSS, then closes."""
    pods = (n + per_pod - 1) // per_pod
    sem = asyncio.Semaphore(100)
    run_id = time.time_ns()

    async def one(path, pod, uid, offer):
        async with sem:
            return await ws_connect(port, path, token(f"idle-{run_id}-{pod}", uid), offer)

    browsers = await asyncio.gather(*[one("browser", i // per_pod, 1 + i % per_pod, deflate) for i in range(n)])
    runners = await asyncio.gather(*[one("runner", p, 0, False) for p in range(pods)])
    agreed = sum(1 for b in browsers if negotiated(b))

    async def first(b):
        while True:
            m = await asyncio.wait_for(b.recv(), 30)
            if m[:1] == b"\x02":
                return m == frame
    await asyncio.gather(*[r.send(frame) for r in runners])
    ok = await asyncio.gather(*[first(b) for b in browsers])
    await asyncio.sleep(settle)
    return browsers, runners, {"browsers": n, "pods": pods, "negotiated": agreed, "received": sum(ok)}


async def warm_up(port, message, pods=16):
    """Pods of one compressing browser, each sent one large message: the
    relay's per-loop compressors touch their work areas (hundreds of KiB a
    loop) before the baseline, so that RSS growth afterwards is per
    connection. 16 pods: both loops get one (pods hash to loops)."""
    run_id = time.time_ns()
    for i in range(pods):
        pod = f"warm-{run_id}-{i}"
        b = await ws_connect(port, "browser", token(pod, 1), True)
        r = await ws_connect(port, "runner", token(pod, 0), False)
        await r.send(message)
        while (await asyncio.wait_for(b.recv(), 10))[:1] != b"\x02":
            pass
        await b.close()
        await r.close()


async def close_all(conns):
    sem = asyncio.Semaphore(200)

    async def one(c):
        async with sem:
            try:
                await asyncio.wait_for(c.close(), 3)
            except Exception:
                pass
    await asyncio.gather(*[one(c) for c in conns])


async def attach_run(port, pid, messages, joins, deflate):
    """Part 4: a compressing browser is live while the runner sends the trace
    (the ring holds it all), then `joins` browsers join one at a time, each
    reading its catch-up to the end; the relay's CPU (schedstat) and
    compressions (/metrics) per join."""
    pod = f"attach-{time.time_ns()}"
    first = await ws_connect(port, "browser", token(pod, 1), deflate)
    runner = await ws_connect(port, "runner", token(pod, 0), False)
    got = 0
    for i, m in enumerate(messages):
        await runner.send(m)
        if i % 128 == 127:
            while got < i - 256:
                x = await first.recv()
                got += x[:1] == b"\x02"
    while got < len(messages):
        x = await first.recv()
        got += x[:1] == b"\x02"
    rows = []
    for j in range(joins):
        before = H.relay_metrics(port, False)
        cpu0 = cpu_ns(pid)
        t1 = time.time()
        b = await ws_connect(port, "browser", token(pod, 2 + j), deflate)
        n = 0
        while n < len(messages):
            x = await asyncio.wait_for(b.recv(), 30)
            n += x[:1] == b"\x02"
        wall = time.time() - t1
        cpu = (cpu_ns(pid) - cpu0) / 1e9
        after = H.relay_metrics(port, False)
        x = metric_deltas(before, after) or {}
        rows.append({"negotiated": negotiated(b), "relay_cpu_ms": 1e3 * cpu, "wall_ms": 1e3 * wall,
                     "compressions": x.get("compressions", 0), "compression_bytes_in": x.get("compression_bytes_in", 0)})
        await b.close()
    await first.close()
    await runner.close()
    later = rows[1:] or rows
    return {"joins": joins, "negotiated": sum(r["negotiated"] for r in rows), "ring_messages": len(messages),
            "first": rows[0], "later_cpu_ms": statistics.median(r["relay_cpu_ms"] for r in later),
            "later_compressions": statistics.median(r["compressions"] for r in later),
            "later_wall_ms": statistics.median(r["wall_ms"] for r in later), "per_join": rows}


def vm_size(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return None


async def churn_run(port, pid, pods, rounds, deflate, message):
    """Part 6: `rounds` × `pods` short-lived pods (a runner and one browser;
    one message; both leave, the pod ends at once with the short timers);
    RSS and VmSize after each round."""
    out = []
    for rnd in range(rounds):
        sem = asyncio.Semaphore(50)
        run_id = time.time_ns()

        async def one(i):
            async with sem:
                pod = f"churn-{run_id}-{i}"
                b = await ws_connect(port, "browser", token(pod, 1), deflate)
                r = await ws_connect(port, "runner", token(pod, 0), False)
                await r.send(message)
                while (await asyncio.wait_for(b.recv(), 10))[:1] != b"\x02":
                    pass
                await b.close()
                await r.close()
        await asyncio.gather(*[one(i) for i in range(pods)])
        await asyncio.sleep(1.0)
        met = H.relay_metrics(port, False) or {}
        out.append({"pods_ended": (rnd + 1) * pods, "rss": rss(pid), "vm_size": vm_size(pid),
                    "pods_open": met.get("relay_pods"), "compressions": met.get("relay_compressions_total")})
    return out


async def presence_run(port, pid, cycles, rounds, deflate):
    """Part 6b: a pod with a runner and 8 extended browsers (`ext=1`, so
    every join and leave sends them Presence); a 9th extended browser joins
    and leaves `cycles` times per round; RSS after each round."""
    from websockets.asyncio.client import connect
    pod = f"presence-{time.time_ns()}"

    async def browser(uid):
        return await connect(f"ws://127.0.0.1:{port}/browser/relay?token={token(pod, uid)}&ext=1",
                             compression="deflate" if deflate else None, max_size=None, ping_interval=None, proxy=None)
    stay = [await browser(1 + i) for i in range(8)]
    runner = await ws_connect(port, "runner", token(pod, 0), False)

    async def drain(ws):
        try:
            async for _ in ws:
                pass
        except Exception:
            pass
    tasks = [asyncio.create_task(drain(w)) for w in stay + [runner]]
    await asyncio.sleep(0.3)
    out = []
    for rnd in range(rounds):
        for _ in range(cycles):
            b = await browser(100)
            await b.close()
        await asyncio.sleep(0.5)
        out.append({"cycles": (rnd + 1) * cycles, "rss": rss(pid), "vm_size": vm_size(pid)})
    for w in stay + [runner]:
        await w.close()
    for t in tasks:
        t.cancel()
    return out


# MARK: runs

def fanout_run(relays, mode, variant, d, tmp, k, total, what):
    p, port = relays.get(mode, what)
    pod = f"fan-{mode}-{time.time_ns()}"
    out = os.path.join(tmp, f"fan-{mode}-{variant}-{time.time_ns()}.json")
    args = [FANOUT, "--port", str(port), "--runner-token", token(pod, 0), "--browser-token", token(pod, 5),
            "--browsers", str(SUBSCRIBERS), "--duration", str(d), "--warmup", "1", "--server-pid", str(p.pid),
            "--json", out, TRACE]
    if variant.startswith("rate"):
        args[1:1] = ["--rate", str(RATE)]
    else:
        args[1:1] = ["--window", variant.split()[-1]]
    before = H.relay_metrics(port, False)
    m = H.Meter(p.pid)
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    met = m.done()
    try:
        with open(out) as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = {"ok": False, "error": r.stdout[-500:]}
    res["meter"] = met
    res["relay_metrics"] = metric_deltas(before, H.relay_metrics(port, False))
    x = res["relay_metrics"] or {}
    log(f"[{k}/{total}] {what} {mode} {variant}: {res.get('deliveries_per_s', 0) / 1e6:.2f} M deliveries/s, relay CPU "
        f"{res.get('server_cpu_us_per_delivery', 0):.3f} µs/delivery ({res.get('server_cpu_percent', 0):.0f}%), "
        f"{res.get('wire_bytes_per_delivery', 0):.1f} B/delivery on the wire, compressions/frame in "
        f"{(x.get('compressions', 0) / x['frames_in']) if x.get('frames_in') else 0:.3f}, driver CPU "
        f"{res.get('client_cpu_percent', 0):.0f}%" + ("" if res.get("ok") else f" FAILED: {res.get('error', '')[:200]}"))
    return res


def idle_measure(tmp, variant, n, per_pod, frame, warm, settle, k, total, what):
    """A fresh relay (--compression shared), warmed up (warm_up), its RSS
    before and after n idle browsers."""
    rel = Relays(tmp)
    p, port = rel.start(f"idle-{variant.replace(' ', '')}-{time.time_ns()}", "shared")
    try:
        time.sleep(0.3)
        start = rss(p.pid)
        asyncio.run(warm_up(port, warm))
        time.sleep(0.5)
        base = rss(p.pid)
        res = {"variant": variant, "start_rss": start, "baseline_rss": base}
        if variant.startswith("loadgen"):
            poll = GaugePoller(port)
            r = C.loadgen("connections", "relay", port, p.pid, ["--connections", str(n), "--per-pod", str(per_pod),
                                                                "--loops", "2"]
                          + (["--compression"] if variant == "loadgen --compression" else []), 3, tmp)
            seen = poll.done()
            res.update({"loadgen": {kk: vv for kk, vv in r.items() if kk != "latency_histogram"},
                        "rss_bytes_per_connection": r.get("server_rss_bytes_per_connection"),
                        "connections": r.get("connections_total") or n + (n + per_pod - 1) // per_pod,
                        "ok": r.get("ok", True)})
            res["rss_growth"] = r.get("server_rss_growth_bytes")
            res["compression_connections"] = seen
        else:
            async def go():
                browsers, runners, info = await idle_run(port, n, per_pod, variant == "compressing", frame, settle)
                after = rss(p.pid)
                met = H.relay_metrics(port, False)
                await close_all(browsers + runners)
                return info, after, met
            info, after, met = asyncio.run(go())
            conns = info["browsers"] + info["pods"]
            res.update(info)
            res.update({"rss_after": after, "rss_growth": after - base, "connections": conns,
                        "rss_bytes_per_connection": (after - base) / conns,
                        "rss_bytes_per_browser": (after - base) / info["browsers"],
                        "compression_connections": (met or {}).get("relay_compression_connections"),
                        "ok": info["received"] == n and (variant != "compressing" or info["negotiated"] == n)})
        log(f"[{k}/{total}] {what} {variant}: RSS {start / 2**20:.1f} MiB, warmed up {base / 2**20:.1f} MiB, "
            f"+ {(res.get('rss_growth') or 0) / 2**20:.1f} MiB, "
            f"{res.get('rss_bytes_per_connection') or 0:,.0f} B per connection"
            + (f", {res.get('negotiated')} negotiated, {res.get('received')} got their frame" if not variant.startswith("loadgen")
               else f", relay_compression_connections {res.get('compression_connections')}"))
        return res
    finally:
        rel.stop()


LOADGEN_FANOUT = ["--pods", "1", "--subscribers", "100", "--size", "128", "--max", "--window", "32"]


def loadgen_run(relays, mode, offer, d, tmp, k, total, what):
    p, port = relays.get(mode, what)
    before = H.relay_metrics(port, False)
    m = H.Meter(p.pid)
    poll = GaugePoller(port)
    r = C.loadgen("fanout", "relay", port, p.pid, LOADGEN_FANOUT + (["--compression"] if offer else []), d, tmp)
    r["compression_connections_seen"] = poll.done()
    r["meter"] = m.done()
    r["relay_metrics"] = metric_deltas(before, H.relay_metrics(port, False))
    r.pop("latency_histogram", None)
    x = r["relay_metrics"] or {}
    log(f"[{k}/{total}] {what} loadgen 128 B window 32{' --compression' if offer else ''} against {mode}: "
        f"{r.get('deliveries_per_s', 0) / 1e6:.2f} M deliveries/s, relay CPU {H.cpu_per(r) or 0:.3f} µs/delivery, "
        f"{x.get('compressions', 0):,.0f} compressions, loadgen CPU {r.get('client_cpu_percent', 0):.0f}%" + ("" if r.get("ok", True) else f" FAILED: {r.get('error', '')[:200]}"))
    return r


def main(opts, d):
    reps = opts.reps or (1 if opts.quick else 3)
    n_idle = 500 if opts.quick else 2000
    joins = 5 if opts.quick else 10
    churn_pods, churn_rounds = (500, 2) if opts.quick else (1000, 4)
    started = time.time()
    try:
        import websockets
    except ImportError:
        sys.exit("missing the Python package websockets (scripts/setup.sh installs it in .venv)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not os.path.exists(TRACE):
        log("no trace: recording one (traces/make_trace.py)")
        subprocess.run([sys.executable, os.path.join(C.ROOT, "Benchmarks/traces/make_trace.py")], check=True)
    for src, exe, libs in ((DEFLATE_SRC, DEFLATE, ["-lz", "-ldeflate"]), (FANOUT_SRC, FANOUT, ["-lz"])):
        if not build(src, exe, libs):
            sys.exit(f"could not build {src} (cc, zlib1g-dev, libdeflate-dev)")
    header, chunks = read_trace(TRACE)
    messages = [b"\x02" + c for c in chunks]
    log(f"trace {TRACE}: {len(chunks)} chunks, {sum(len(c) for c in chunks):,} B")
    log("measuring how many cores the machine really gives")
    m = C.machine()
    m["commit"] = C.git_describe()
    m["load_before"] = os.getloadavg()
    mt = H.Meter(os.getpid())
    time.sleep(2)
    m["others_before"] = mt.done()
    if m["others_before"]["other_cpu_cores"] > 0.25:
        log(f"!! the machine is not quiet: other processes use {m['others_before']['other_cpu_cores']:.2f} cores")
    m["binaries"] = {"relay": H.binary_info(C.RELAY), "loadgen": H.binary_info(C.LOADGEN)}
    tmp = tempfile.mkdtemp(prefix="compare-compression-")
    state = {"argv": sys.argv, "reps": reps, "d": d, "quick": opts.quick, "m": m, "tmp": tmp, "trace": header,
             "env": {k: os.environ[k] for k in ("RELAY_BIN", "LOADGEN_BIN", "C_BUILD_DIR") if os.environ.get(k)},
             "versions": H.versions(), "websockets_version": websockets.__version__, "n_idle": n_idle, "joins": joins, "rate": RATE}

    # 0. zlib vs libdeflate.
    log("deflate_compare: zlib vs libdeflate on the trace's messages")
    dc_json = os.path.join(tmp, "deflate_compare.json")
    r = subprocess.run([DEFLATE, "--json", dc_json, TRACE], capture_output=True, text=True, timeout=300)
    print(r.stdout, end="", flush=True)
    with open(dc_json) as f:
        state["deflate"] = json.load(f)
    state["deflate_text"] = r.stdout

    relays = Relays(tmp)
    fan, check, attach, lg = {}, [], {}, {}
    try:
        for mode in MODES:
            relays.start(mode, mode)
        # 1. Check and wire bytes.
        for i in range(reps):
            res = asyncio.run(check_run(relays, messages, i))
            check.append(res)
            s = res["shared"]
            log(f"[{i + 1}/{reps}] check: compressing browser {s['compressing']['messages']} messages, "
                f"{s['compressing']['mismatches']} wrong, {s['compressing']['wire_bytes']:,} B; plain "
                f"{s['plain']['wire_bytes']:,} B; declined (off) {res['off']['declined']['wire_bytes']:,} B, "
                f"negotiated {res['off']['declined']['negotiated']}")
        # 2. Fan-out.
        variants = [f"window {w}" for w in WINDOWS] + [f"rate {RATE}"]
        combos = [(mode, v) for v in variants for mode in MODES]
        total, k = reps * len(combos), 0
        for i in range(reps):
            for mode, v in H.order(combos, i):
                k += 1
                fan.setdefault((mode, v), []).append(fanout_run(relays, mode, v, d, tmp, k, total, f"rep {i + 1}/{reps} fan-out 1→100"))
        # 4. Attach with a full ring.
        total, k = reps * len(MODES), 0
        for i in range(reps):
            for mode in H.order(MODES, i):
                k += 1
                p, port = relays.get(mode, "attach")
                res = asyncio.run(attach_run(port, p.pid, messages, joins, True))
                attach.setdefault(mode, []).append(res)
                log(f"[{k}/{total}] rep {i + 1}/{reps} attach {mode}: first join {res['first']['relay_cpu_ms']:.1f} ms relay CPU, "
                    f"{res['first']['compressions']:,.0f} compressions; later joins {res['later_cpu_ms']:.1f} ms, "
                    f"{res['later_compressions']:,.0f} compressions (median; ring of {len(messages)} frames), "
                    f"{res['later_wall_ms']:.0f} ms per join with the client")
        # 5. loadgen, offering compression and not.
        combos = [(mode, offer) for offer in (False, True) for mode in MODES]
        total, k = reps * len(combos), 0
        for i in range(reps):
            for mode, offer in H.order(combos, i):
                k += 1
                lg.setdefault((mode, offer), []).append(loadgen_run(relays, mode, offer, d, tmp, k, total, f"rep {i + 1}/{reps}"))
    finally:
        relays.stop()
    # 3. Idle connections (fresh relays).
    frame = next((mm for mm in messages if 900 <= len(mm) <= 1500), messages[0])
    big = max(messages, key=len)
    idle = {}
    ivariants = IDLE_VARIANTS
    total, k = reps * len(ivariants), 0
    for i in range(reps):
        for v in H.order(ivariants, i):
            k += 1
            idle.setdefault(v, []).append(idle_measure(tmp, v, n_idle, 9, frame, big, 2.0, k, total, f"rep {i + 1}/{reps} idle {n_idle}"))
    # 6. Pod churn (fresh relays with short pod timers).
    churn = {}
    small = next((mm for mm in messages if 100 <= len(mm) <= 160), messages[0])
    for k, v in enumerate(("compressing", "uncompressed")):
        rel = Relays(tmp)
        p, port = rel.start(f"churn-{v}", "shared", ["--keep-alive-duration", "1ms", "--runner-reconnect-timeout", "1ms"])
        try:
            time.sleep(0.3)
            start, vstart = rss(p.pid), vm_size(p.pid)
            rows = asyncio.run(churn_run(port, p.pid, churn_pods, churn_rounds, v == "compressing", small))
            churn[v] = {"start_rss": start, "start_vm_size": vstart, "rounds": rows}
            log(f"[{k + 1}/2] churn {v}: {churn_rounds} × {churn_pods} pods ended: RSS {start / 2**20:.1f} → "
                + ", ".join(f"{r['rss'] / 2**20:.1f}" for r in rows) + f" MiB; VmSize {vstart / 2**20:.0f} → "
                + ", ".join(f"{r['vm_size'] / 2**20:.0f}" for r in rows) + " MiB")
        finally:
            rel.stop()
        state["deaths"] = state.get("deaths", []) + rel.deaths
    presence = {}
    for k, v in enumerate(("compressing", "uncompressed")):
        rel = Relays(tmp)
        p, port = rel.start(f"presence-{v}", "shared")
        try:
            time.sleep(0.3)
            start = rss(p.pid)
            rows = asyncio.run(presence_run(port, p.pid, churn_pods, churn_rounds, v == "compressing"))
            presence[v] = {"start_rss": start, "rounds": rows}
            log(f"[{k + 1}/2] join/leave {v}: {churn_rounds} × {churn_pods} cycles: RSS {start / 2**20:.1f} → "
                + ", ".join(f"{r['rss'] / 2**20:.1f}" for r in rows) + " MiB")
        finally:
            rel.stop()
        state["deaths"] = state.get("deaths", []) + rel.deaths
    state.update({"churn": churn, "churn_message": len(small), "churn_pods": churn_pods, "churn_rounds": churn_rounds,
                  "presence": presence})
    state.update({"fan": fan, "check": check, "attach": attach, "loadgen": lg, "idle": idle, "idle_frame": len(frame),
                  "deaths": relays.deaths + state.get("deaths", [])})
    m["load_after"] = os.getloadavg()
    m["binaries_after"] = {"relay": H.binary_info(C.RELAY), "loadgen": H.binary_info(C.LOADGEN)}
    state["elapsed"] = time.time() - started
    logs = []
    for path in relays.logs:
        with open(path, errors="replace") as f:
            logs += [ln for ln in f.read().splitlines() if ln.strip()]
    state["logs"] = logs
    path = os.path.join(tmp, "compression-state.pickle")
    with open(path, "wb") as f:
        pickle.dump(state, f)
    log(f"measurements saved in {path} (Benchmarks/compressionbench.py --report-from {path} writes the report again)")
    write_report(state)


# MARK: report

def rate(r):
    return r.get("deliveries_per_s") if r.get("ok") else None


def write_report(s):
    med, fmt = C.med, C.fmt
    m, reps, d = s["m"], s["reps"], s["d"]
    date = datetime.date.today().isoformat()
    base = os.path.join(C.ROOT, "Benchmarks", "results", f"{date}-compression" + ("-quick" if s["quick"] else ""))
    env = " ".join(f"{k}={v}" for k, v in s["env"].items())
    command = (env + " " if env else "") + ".venv/bin/python Benchmarks/compare.py " + " ".join(s["argv"][1:])
    b = m["binaries"]
    tr = s["trace"]
    dc = s["deflate"]
    fan = s["fan"]
    others = [r["meter"]["other_cpu_cores"] for rs in fan.values() for r in rs]
    sizes = None
    try:
        _, chunks = read_trace(TRACE)
        ls = sorted(len(c) + 1 for c in chunks)
        sizes = (ls[len(ls) // 10], ls[len(ls) // 2], ls[9 * len(ls) // 10], ls[-1], sum(ls) / len(ls),
                 sum(1 for x in ls if x < dc["min_size"]))
    except (OSError, ValueError):
        pass
    lines = [f"# permessage-deflate: ratio and cost on a terminal trace, zlib vs libdeflate, {date}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']} (host {m['host']}); two CPU-bound processes "
             f"together get {m['effective_cores']} cores' worth of time (the relay and its clients share them). Load "
             f"average {m['load_before'][0]:.2f} before the run and {m['load_after'][0]:.2f} after; other processes used a "
             f"median of {fmt(med(others), 2)} cores (max {fmt(max(others) if others else None, 2)}) during the fan-out runs.",
             f"Relay source: commit {m['commit']}. Binaries: relay `{b['relay']['path']}` ({b['relay']['mtime']}, sha256 "
             f"{b['relay']['sha256']}…), loadgen `{b['loadgen']['path']}` ({b['loadgen']['mtime']}, sha256 "
             f"{b['loadgen']['sha256']}…). zlib {dc['zlib_version']}, libdeflate {dc['libdeflate_version']}.", "",
             f"Command (whole run {s['elapsed'] / 60:.1f} min):", "", "```", command, "```", "",
             f"Every relay figure is the median of {reps} interleaved repetition{'s' if reps > 1 else ''} (each "
             f"repetition rotates the order of the variants and reverses it every other time); each fan-out run is {d} s "
             f"after 1 s of warm-up. The relays run with their defaults (2 loops; compression with zlib level 6, "
             f"inflate with libdeflate; "
             f"`--compression-min-size 64`) and `--max-browsers-per-pod 100000`; `shared` and `off` are two relays side by "
             f"side, idle when not measured.", "",
             f"**The trace** (`Benchmarks/traces/terminal.trace`, {os.path.getsize(TRACE):,} B, recorded "
             f"{tr.get('created', '?')} by `traces/make_trace.py`): an interactive bash in a {tr['pty'][0]}×{tr['pty'][1]} "
             f"PTY, commands typed a key at a time, the master read as a runner reads it (`read(fd, 4096)` when readable): "
             f"{tr['chunks']:,} reads, {tr['bytes']:,} B. Segments: "
             + "; ".join(f"{sg['name']} {sg['count']:,} reads / {sg['bytes']:,} B" for sg in tr["segments"]) + ". "
             + (f"As relay messages (`[0x02][chunk]`): p10/p50/p90/max {sizes[0]}/{sizes[1]}/{sizes[2]}/{sizes[3]} B, mean "
                f"{sizes[4]:.0f} B; {sizes[5]:,} of {tr['chunks']:,} are under {dc['min_size']} B and go uncompressed "
                f"(keystroke echoes, prompts, line-buffered output read a line at a time)." if sizes else ""), ""]
    lines += ["## Reading (by hand; the script does not write this section)", "", "(to be written after the run)", ""]

    # 0. zlib vs libdeflate.
    lines += ["## 1. zlib vs libdeflate, each message on its own (`deflate/deflate_compare.c`)", "",
              f"Every message of {dc['min_size']} B or more ({dc['compressed_messages']:,} messages, "
              f"{dc['compressed_bytes_in']:,} B) compressed alone, as the relay does with no context takeover; "
              f"{dc['messages'] - dc['compressed_messages']:,} smaller ones ({dc['bytes'] - dc['compressed_bytes_in']:,} B) "
              f"count as they are in the whole-trace ratio. zlib: `deflateInit2(level, Z_DEFLATED, -15, 8, "
              f"Z_DEFAULT_STRATEGY)`, `deflateReset` + `deflate(Z_SYNC_FLUSH)` per message, the trailing 00 00 FF FF "
              f"removed. libdeflate: `libdeflate_deflate_compress` + one 0x00 octet (PerMessageDeflateCodec's output before 00a7047). "
              f"Inflate: zlib `inflateReset` + `inflate` of payload + 00 00 FF FF (what a browser does); libdeflate "
              f"`libdeflate_deflate_decompress_ex` of payload + 00 00 FF FF 03 00 (what the relay does with client "
              f"messages). Every message inflated by both libraries and compared with the original. \"zlib 6 "
              f"takeover\" is one zlib stream for the whole trace (a Z_SYNC_FLUSH per message, no reset): what a "
              f"per-connection compressor keeping its window would get, for comparison. One thread; each figure the "
              f"median of {dc['runs']} runs of ≥ {dc['seconds']} s. State: bytes the library allocates for one "
              f"compressor (inflate: zlib {dc['inflate_state_zlib']:,} B, libdeflate {dc['inflate_state_libdeflate']:,} B).", "",
              "| compressor | ratio (out ÷ in, compressed messages) | whole trace on the wire (small ones as they are) | "
              "compress MB/s | compress ns/message | " + " | ".join(f"ns/message {bk['name']} B ({bk['messages']:,})" for bk in dc["buckets"])
              + " | state B | inflate MB/s (own output) | inflate ns/message | mismatches |",
              "|---|---|---|---|---|" + "---|" * len(dc["buckets"]) + "---|---|---|---|"]
    for c in dc["configs"]:
        bks = c.get("buckets") or []
        lines.append(f"| {c['name']}{' (the relay)' if c['name'] == RELAY_COMPRESSOR else ''} | {c['ratio']:.3f} | "
                     f"{c['ratio_trace']:.3f} | {c['compress_mb_s']:.1f} | {c['compress_ns_per_message']:,.0f} | "
                     + " | ".join((f"{bk['ns_per_message']:,.0f}" if bks else "-") for bk in (bks or dc["buckets"]))
                     + f" | {c['state_bytes']:,} | {c['inflate_mb_s']:.1f} | {c['inflate_ns_per_message']:,.0f} | {c['mismatches']} |")
    l6 = next((c for c in dc["configs"] if c["name"] == RELAY_COMPRESSOR), None)
    if l6 and l6.get("buckets") and dc["buckets"][0]["name"] == "<256":
        b0 = l6["buckets"][0]
        n0 = dc["buckets"][0]["messages"]
        small_in = dc["bytes"] - dc["compressed_bytes_in"]
        now_out = l6["bytes_out"] + small_in
        alt_out = l6["bytes_out"] - b0["bytes_out"] + b0["bytes_in"] + small_in
        t_now = l6["compress_ns_per_message"] * dc["compressed_messages"]
        t_alt = t_now - b0["ns_per_message"] * n0
        lines += ["", f"Where the time goes: {n0:,} of the {dc['compressed_messages']:,} messages compressed are under 256 B "
                      f"({b0['bytes_in'] / dc['compressed_bytes_in']:.0%} of their bytes) and each costs "
                      f"{b0['ns_per_message'] / 1e3:.1f} µs with the relay's {RELAY_COMPRESSOR} (against {l6['buckets'][1]['ns_per_message'] / 1e3:.1f} µs for one of "
                      f"256–1023 B) to come out at {b0['bytes_out'] / b0['bytes_in']:.2f} of its size: a fixed cost per call "
                      f"(the compressor's tables are reset per message) for little gain. With `--compression-min-size 256` instead of "
                      f"{dc['min_size']}, the whole trace would leave at {alt_out / dc['bytes']:.3f} of its size instead of "
                      f"{now_out / dc['bytes']:.3f}, for {t_alt / dc['messages'] / 1e3:.2f} µs of compression per runner frame "
                      f"instead of {t_now / dc['messages'] / 1e3:.2f} ({RELAY_COMPRESSOR}, this trace)."]
    lines += ["", "```", s["deflate_text"].rstrip(), "```", ""]

    # 1. Check and wire bytes.
    ck = s["check"]
    n_msgs = tr["chunks"]

    def cm(path):
        vals = []
        for r in ck:
            v = r
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            vals.append(v)
        return med(vals)
    wc, wp, wd = cm(("shared", "compressing", "wire_bytes")), cm(("shared", "plain", "wire_bytes")), cm(("off", "declined", "wire_bytes"))
    comp_in = cm(("shared", "relay_metrics", "compression_bytes_in"))
    comp_out = cm(("shared", "relay_metrics", "compression_bytes_out"))
    comps = cm(("shared", "relay_metrics", "compressions"))
    fin = cm(("shared", "relay_metrics", "frames_in"))
    bad = sum(r["shared"]["compressing"]["mismatches"] + r["shared"]["plain"]["mismatches"] + r["off"]["declined"]["mismatches"] for r in ck)
    got = [r["shared"]["compressing"]["messages"] for r in ck]
    lines += ["## 2. Bytes on the wire per delivered frame (Python `websockets` browsers)", "",
              f"A Python runner (no compression) sends the whole trace once ({n_msgs:,} messages) to one pod; its "
              f"browsers are `websockets` {s.get('websockets_version', '')} clients (zlib inflater, `compression=\"deflate\"`: they offer "
              f"`permessage-deflate; client_max_window_bits`) counting the bytes their socket read after the handshake "
              f"(WebSocket headers and payloads; TCP/IP headers not counted). On the `shared` relay a compressing and a "
              f"plain (`compression=None`) browser of the same pod get the same frames; on the `off` relay a browser "
              f"offers and is declined. Every message each browser got was compared with the trace.", "",
              f"- Negotiated: `{ck[0]['shared']['compressing']['extensions']}` (shared); off: "
              f"`{ck[0]['off']['declined']['extensions']}`.",
              f"- Messages received by the compressing browser: {', '.join(str(g) for g in got)} of {n_msgs:,}; wrong "
              f"messages over every browser and run: {bad}.", "",
              "| browser | bytes read | per delivered frame | ÷ plain |", "|---|---|---|---|"]
    for label, v in (("shared, compressing", wc), ("shared, plain (no offer)", wp), ("off, offer declined", wd)):
        lines.append(f"| {label} | {fmt(v)} | {fmt(v / n_msgs if v else None, 1)} | {fmt(v / wp if v and wp else None, 3)} |")
    lines += ["", f"The relay's own count for the compressing browser (/metrics, one compression per message per loop): "
                  f"{fmt(comps)} messages compressed of {fmt(fin)} frames in, {fmt(comp_in)} B → {fmt(comp_out)} B "
                  f"({fmt(comp_out / comp_in if comp_in else None, 3)}). `relay_bytes_out_total` over the same run: "
                  f"{fmt(cm(('shared', 'relay_metrics', 'bytes_out')))} B for 2 browsers: the frames' uncompressed size, "
                  f"not what was sent.", ""]

    # 2. Fan-out.
    def fm(mode, v, f):
        return med([f(r) for r in fan.get((mode, v), []) if r.get("ok")])

    def paired(v, f):
        a, b = fan.get(("shared", v), []), fan.get(("off", v), [])
        return med([f(x) / f(y) for x, y in zip(a, b) if x.get("ok") and y.get("ok") and f(x) and f(y)])
    dps = lambda r: r.get("deliveries_per_s")  # noqa: E731
    cpu = lambda r: r.get("server_cpu_us_per_delivery")  # noqa: E731
    wire = lambda r: r.get("wire_bytes_per_delivery")  # noqa: E731
    variants = [f"window {w}" for w in WINDOWS] + [f"rate {s['rate']}"]
    lines += [f"## 3. Fan-out 1→{SUBSCRIBERS}, the trace's frames (`deflate/pmd_fanout.c`)", "",
              f"One runner and {SUBSCRIBERS} browsers on one pod; the runner sends the trace's messages in order, over "
              f"and over (masked with key 0). The browsers offer permessage-deflate in both modes (the `off` relay "
              f"declines) and parse frame headers only (no inflate), so the driver costs the same either way. "
              f"`window W`: closed loop, up to W frames in flight per browser (a burst once half have arrived, as "
              f"`loadgen fanout --max`); `rate {s['rate']}`: open loop, {s['rate']:,} frames/s "
              f"({s['rate'] * SUBSCRIBERS:,} deliveries/s), which both modes sustain: the relay's CPU at equal work. "
              f"Relay CPU: /proc/PID/stat user + system over the measured seconds ÷ deliveries. Wire: bytes the "
              f"browsers' sockets read ÷ frames delivered. Compressions per frame: the relay's "
              f"`relay_compressions_total` ÷ `relay_frames_in_total` over the run (1 × the share of frames ≥ 64 B "
              f"when each frame is compressed once for all {SUBSCRIBERS} browsers). Driver CPU: `pmd_fanout`'s own, "
              f"% of one core (it is one thread: near 100% it is the bound).", "",
              "| run | mode | deliveries/s | shared ÷ off (paired) | relay CPU µs/delivery | relay CPU % | bytes on the wire "
              "per delivery | wire ÷ uncompressed | compressions per frame in | driver CPU % | lags / drops | runs (M/s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        for mode in MODES:
            rs = fan.get((mode, v), [])
            if not rs:
                continue
            mets = [r.get("relay_metrics") or {} for r in rs]
            cpf = med([x["compressions"] / x["frames_in"] for x in mets if x.get("frames_in")])
            fails = sum(1 for r in rs if not r.get("ok"))
            lines.append(f"| {v}{f' ({fails} failed)' if fails else ''} | {mode} | {fmt(fm(mode, v, dps))} | "
                         f"{(fmt(paired(v, dps), 2) + '×') if mode == 'shared' else '-'} | {fmt(fm(mode, v, cpu), 3)} | "
                         f"{fmt(fm(mode, v, lambda r: r.get('server_cpu_percent')))}% | {fmt(fm(mode, v, wire), 1)} | "
                         f"{fmt(fm(mode, v, lambda r: r.get('wire_ratio')), 3)} | {fmt(cpf, 3)} | "
                         f"{fmt(fm(mode, v, lambda r: r.get('client_cpu_percent')))}% | "
                         f"{sum(x.get('lags', 0) for x in mets):.0f} / {sum(x.get('dropped', 0) for x in mets):.0f} | "
                         f"{', '.join(f'{(rate(r) or 0) / 1e6:.2f}' for r in rs)} |")
    lines += ["", "Ratios of paired runs (shared ÷ off, same repetition; median):", "",
              "| run | deliveries/s | relay CPU per delivery | bytes on the wire per delivery |", "|---|---|---|---|"]
    for v in variants:
        lines.append(f"| {v} | {fmt(paired(v, dps), 2)}× | {fmt(paired(v, cpu), 2)}× | {fmt(paired(v, wire), 3)}× |")
    dcl = next((c for c in dc["configs"] if c["name"] == RELAY_COMPRESSOR), None)
    if dcl:
        share = dc["compressed_messages"] / dc["messages"]
        lines += ["", f"For scale: the relay's {RELAY_COMPRESSOR} takes {dcl['compress_ns_per_message'] / 1e3:.2f} µs per compressed "
                      f"message in section 1, and {share:.0%} of the trace's messages are compressed: "
                      f"{dcl['compress_ns_per_message'] * share / 1e3:.2f} µs per runner frame, "
                      f"{dcl['compress_ns_per_message'] * share / 1e3 / SUBSCRIBERS:.4f} µs per delivery when "
                      f"{SUBSCRIBERS} browsers share it."]
    lines.append("")

    # 3. Idle memory.
    idle = s["idle"]
    n_conns = s["n_idle"] + (s["n_idle"] + 8) // 9
    lines += [f"## 4. Idle connections: relay memory per connection ({s['n_idle']:,} browsers, 9 per pod)", "",
              f"A fresh relay (`--compression shared`) per measurement, warmed up first: 16 pods with one compressing "
              f"browser each get the trace's largest message and end, so that each loop's compressor has touched its "
              f"work area ({RELAY_COMPRESSOR}: {next((c['state_bytes'] for c in dc['configs'] if c['name'] == RELAY_COMPRESSOR), 0):,} B "
              f"per loop, a fixed cost) before the baseline. Then VmRSS, {s['n_idle']:,} browsers in pods of 9, each pod "
              f"with a runner ({n_conns:,} connections), VmRSS again; per connection: the growth ÷ all connections "
              f"(browsers and runners, as `loadgen connections` counts).", "",
              f"- **compressing / uncompressed** (Python `websockets`, `compression=\"deflate\"` / `None`; runners "
              f"uncompressed): once all are connected each runner sends one {s['idle_frame']:,} B message of the trace "
              f"(compressed for compressing browsers) and every browser must receive it, then 2 s idle: whatever a "
              f"connection keeps after its first compressed delivery is counted.",
              f"- **loadgen / loadgen --compression**: `loadgen connections --connections {s['n_idle']} --per-pod 9` "
              f"(no message sent), without and with `--compression` (every connection, runners too, offers and "
              f"negotiates): the scenario the existing ≤ {IDLE_TARGET} B target is about.", "",
              "| connections | negotiated | got the message | RSS growth | B per connection | B per browser | "
              "relay_compression_connections | runs (B per connection) |", "|---|---|---|---|---|---|---|---|"]
    warm = [(r.get("baseline_rss") or 0) - (r.get("start_rss") or 0) for rs in idle.values() for r in rs if r.get("start_rss")]
    for v in IDLE_VARIANTS:
        rs = idle.get(v, [])
        if not rs:
            continue
        py = not v.startswith("loadgen")
        per = [r.get("rss_bytes_per_connection") for r in rs]
        lines.append(f"| {v}{' (websockets)' if py else ''} | "
                     f"{fmt(med([r.get('negotiated') for r in rs])) if py else '-'} | "
                     f"{fmt(med([r.get('received') for r in rs])) if py else '-'} | "
                     f"{fmt(med([(r.get('rss_growth') or 0) / 2**20 for r in rs]), 1)} MiB | {fmt(med(per))} | "
                     f"{fmt(med([r.get('rss_bytes_per_browser') for r in rs])) if py else '-'} | "
                     f"{fmt(med([r.get('compression_connections') for r in rs]))} | "
                     f"{', '.join(fmt(x) for x in per)} |")

    def idle_diff(a, b):
        xs, ys = idle.get(a, []), idle.get(b, [])
        return med([x.get("rss_bytes_per_connection") - y.get("rss_bytes_per_connection") for x, y in zip(xs, ys)
                    if x.get("rss_bytes_per_connection") is not None and y.get("rss_bytes_per_connection") is not None])
    verdict = []
    for v in IDLE_VARIANTS:
        x = med([r.get("rss_bytes_per_connection") for r in idle.get(v, [])])
        if x is not None:
            verdict.append(f"{v} {fmt(x)} B ({'met' if x <= IDLE_TARGET else 'not met'})")
    lines += ["", f"The warm-up itself (16 compressing pods, then gone) grew a fresh relay's RSS by a median of "
                  f"{fmt(med(warm) / 2**10 if warm else None)} KiB (start {fmt(med([r.get('start_rss') for rs in idle.values() for r in rs]) / 2**20, 1)} MiB): "
                  f"the compressors' work areas and what the ended pods leave behind. "
                  f"\"relay_compression_connections\" is the relay's gauge after the Python browsers connected, and for "
                  f"loadgen the largest value seen while it ran (sampled every 0.25 s).",
              "", f"Compressing − uncompressed, paired runs (median): websockets {fmt(idle_diff('compressing', 'uncompressed'))} B, "
                  f"loadgen {fmt(idle_diff('loadgen --compression', 'loadgen'))} B per connection. Target ≤ {IDLE_TARGET} B "
                  f"per idle subscribed connection, at {s['n_idle']:,} browsers: " + "; ".join(verdict) + ". (The "
                  f"target's own figure comes from `compare.py`'s default run, 15,000 connections, where the relay's "
                  f"fixed heap growth weighs less per connection; the difference between paired runs is the figure "
                  f"that compression owns.)", ""]

    # 4. Attach.
    at = s["attach"]
    lines += [f"## 5. Joining a pod with a full replay ring ({s['joins']} joins, one at a time)", "",
              f"A compressing `websockets` browser is live while the runner sends the whole trace once ({n_msgs:,} "
              f"frames, all replayable: the default 1 MiB ring holds them); then {s['joins']} browsers offering "
              f"compression join one after another, each reading its catch-up (the whole ring, frame by frame) to the "
              f"end before the next. Per join: the relay's CPU (every thread's /proc schedstat, ns) and its "
              f"compressions (/metrics), for the first join and the median of the later ones.", "",
              "| relay | negotiated | first join: relay CPU ms | first join: compressions | later joins: relay CPU ms | "
              "later joins: compressions | ms per join with the client | runs (first / later ms CPU) |",
              "|---|---|---|---|---|---|---|---|"]
    for mode in MODES:
        rs = at.get(mode, [])
        if not rs:
            continue
        lines.append(f"| {mode} | {fmt(med([r['negotiated'] for r in rs]))} of {s['joins']} | "
                     f"{fmt(med([r['first']['relay_cpu_ms'] for r in rs]), 2)} | {fmt(med([r['first']['compressions'] for r in rs]))} | "
                     f"{fmt(med([r['later_cpu_ms'] for r in rs]), 2)} | {fmt(med([r['later_compressions'] for r in rs]))} | "
                     f"{fmt(med([r['later_wall_ms'] for r in rs]))} | "
                     f"{', '.join(fmt(r['first']['relay_cpu_ms'], 1) + ' / ' + fmt(r['later_cpu_ms'], 1) for r in rs)} |")
    lines.append("")

    # 5. loadgen.
    lg = s["loadgen"]
    lines += [f"## 6. `loadgen fanout {' '.join(LOADGEN_FANOUT)}` [--compression]", "",
              "`loadgen`'s payloads are 128 B of `.` after a 17-byte stamp: they compress to almost nothing, so this is "
              "the machinery's cost, not a ratio. Without `--compression` no client offers the extension: the `shared` "
              "relay must cost them nothing. With it every client offers (the runner too: it compresses what it sends and "
              "the relay inflates it; the subscribers inflate every frame with libdeflate).", "",
              "| loadgen | relay | deliveries/s | ÷ (no offer, off) paired | relay CPU µs/delivery | loadgen CPU % | "
              "compressing connections seen | compressions per frame in | p50/p99 µs | runs (M/s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    ref = lg.get(("off", False), [])
    for offer in (False, True):
        for mode in MODES:
            rs = lg.get((mode, offer), [])
            if not rs:
                continue
            pr = med([H.rate(x) / H.rate(y) for x, y in zip(rs, ref) if H.rate(x) and H.rate(y)])
            mets = [r.get("relay_metrics") or {} for r in rs]
            cpf = med([x["compressions"] / x["frames_in"] for x in mets if x.get("frames_in")])
            lt = {p: med([r.get("latency_us", {}).get(p) for r in rs if r.get("ok", True)]) for p in ("p50", "p99")}
            fails = sum(1 for r in rs if not r.get("ok", True))
            lines.append(f"| {'--compression' if offer else 'no offer'}{f' ({fails} failed)' if fails else ''} | {mode} | "
                         f"{fmt(med([H.rate(r) for r in rs]))} | "
                         f"{(fmt(pr, 2) + '×') if (mode, offer) != ('off', False) else '-'} | {fmt(med([H.cpu_per(r) for r in rs]), 3)} | "
                         f"{fmt(med([r.get('client_cpu_percent') for r in rs]))}% | "
                         f"{fmt(med([r.get('compression_connections_seen') for r in rs]))} | {fmt(cpf, 3)} | {fmt(lt['p50'])}/{fmt(lt['p99'])} | "
                         f"{', '.join(f'{(H.rate(r) or 0) / 1e6:.2f}' for r in rs)} |")
    lines.append("")

    # 6. Churn.
    ch = s.get("churn") or {}
    if ch:
        lines += [f"## 7. Memory left behind by ended pods ({s['churn_rounds']} × {s['churn_pods']:,} short-lived pods)", "",
                  f"A fresh relay each (`--compression shared --keep-alive-duration 1ms --runner-reconnect-timeout 1ms`, so "
                  f"that a pod ends as soon as its runner and browser leave); each pod: one browser (compressing or not, "
                  f"Python `websockets`) and a runner that sends one {s['churn_message']} B message of the trace; both "
                  f"leave and the pod ends. After each round (1 s later): the relay's VmRSS and VmSize, and /metrics "
                  f"`relay_pods` (open pods).", "",
                  "| browsers | at start RSS / VmSize MiB | " + " | ".join(f"after {r['pods_ended']:,} pods ended" for r in next(iter(ch.values()))["rounds"])
                  + " | open pods at the end |", "|---|---|" + "---|" * len(next(iter(ch.values()))["rounds"]) + "---|"]
        for v, c in ch.items():
            lines.append(f"| {v} | {c['start_rss'] / 2**20:.1f} / {c['start_vm_size'] / 2**20:.0f} | "
                         + " | ".join(f"{r['rss'] / 2**20:.1f} / {r['vm_size'] / 2**20:.0f}" for r in c["rounds"])
                         + f" | {fmt(c['rounds'][-1].get('pods_open'))} |")
        a, b_ = ch.get("compressing"), ch.get("uncompressed")
        if a and b_:
            da = (a["rounds"][-1]["vm_size"] - a["start_vm_size"]) - (b_["rounds"][-1]["vm_size"] - b_["start_vm_size"])
            ra = (a["rounds"][-1]["rss"] - a["start_rss"]) - (b_["rounds"][-1]["rss"] - b_["start_rss"])
            n = a["rounds"][-1]["pods_ended"]
            lines += ["", f"Compressing − uncompressed after {n:,} ended pods: VmSize {da / 2**20:+.0f} MiB "
                          f"({da / n / 1024:+.1f} KiB per ended pod), RSS {ra / 2**20:+.1f} MiB ({ra / n / 1024:+.1f} KiB per ended pod)."]
        lines.append("")
    pr = s.get("presence") or {}
    if pr:
        first = next(iter(pr.values()))["rounds"]
        lines += [f"One pod kept open instead (a runner and 8 browsers with `ext=1`, compressing or not), and a 9th "
                  f"`ext=1` browser joining and leaving {first[-1]['cycles']:,} times: every join and leave sends Presence "
                  f"(0x23, a relay-made broadcast) to the extended browsers. A fresh relay each; RSS after each "
                  f"{first[0]['cycles']:,} cycles.", "",
                  "| browsers | at start RSS MiB | " + " | ".join(f"after {r['cycles']:,} cycles" for r in first) + " |",
                  "|---|---|" + "---|" * len(first)]
        for v, c in pr.items():
            lines.append(f"| {v} | {c['start_rss'] / 2**20:.1f} | " + " | ".join(f"{r['rss'] / 2**20:.1f}" for r in c["rounds"]) + " |")
        a, b_ = pr.get("compressing"), pr.get("uncompressed")
        if a and b_ and len(a["rounds"]) > 1:
            n = a["rounds"][-1]["cycles"] - a["rounds"][0]["cycles"]
            ga = a["rounds"][-1]["rss"] - a["rounds"][0]["rss"]
            gb = b_["rounds"][-1]["rss"] - b_["rounds"][0]["rss"]
            lines += ["", f"Growth after the first round: compressing {ga / 2**10:+,.0f} KiB, uncompressed {gb / 2**10:+,.0f} KiB over "
                          f"{n:,} cycles ({(ga - gb) / n:+.0f} B per cycle)."]
        lines.append("")

    # Flagged.
    odd = []
    after = m.get("binaries_after")
    if after and any(after[x]["sha256"] != m["binaries"][x]["sha256"] for x in after):
        odd.append("- **The binaries changed during the run**: " + "; ".join(
            f"{x} {m['binaries'][x]['sha256']} → {after[x]['sha256']}" for x in after if after[x]["sha256"] != m["binaries"][x]["sha256"]))
    for dd in s["deaths"]:
        odd.append(f"- **relay {dd['relay']} exited** (code {dd['exit']}) after: {dd['after']}; it was started again.")
    for (mode, v), rs in sorted(fan.items()):
        for i, r in enumerate(rs):
            x = r.get("relay_metrics") or {}
            if not r.get("ok"):
                odd.append(f"- fan-out {mode} {v}, repetition {i + 1} failed: `{r.get('error', '')[:300]}`")
            if r.get("negotiated") not in (None, 0 if mode == "off" else SUBSCRIBERS):
                odd.append(f"- fan-out {mode} {v}, repetition {i + 1}: {r.get('negotiated')} browsers negotiated compression.")
            if x.get("lags") or x.get("dropped"):
                odd.append(f"- fan-out {mode} {v}, repetition {i + 1}: the relay counted {x['lags']:.0f} lags, {x['dropped']:.0f} drops.")
            if x and r.get("deliveries") and x.get("deliveries", 0) < r["deliveries"]:
                odd.append(f"- fan-out {mode} {v}, repetition {i + 1}: the relay counted fewer deliveries than arrived.")
    for r in ck:
        for relay, names in (("shared", ("compressing", "plain")), ("off", ("declined",))):
            for nm in names:
                b_ = r[relay][nm]
                if b_["mismatches"] or b_["messages"] != n_msgs:
                    odd.append(f"- check {relay}/{nm}: {b_['messages']} of {n_msgs} messages, {b_['mismatches']} wrong.")
    for (mode, offer), rs in sorted(s["loadgen"].items()):
        for i, r in enumerate(rs):
            label = f"loadgen{' --compression' if offer else ''} against {mode}, repetition {i + 1}"
            if not r.get("ok", True):
                odd.append(f"- {label} failed: `{r.get('error', '')[:300]}`")
            elif r.get("errors") or r.get("dropped") or r.get("lags"):
                odd.append(f"- {label}: {r.get('errors')} errors, {r.get('dropped')} dropped, {r.get('lags')} lags.")
    for v, rs in idle.items():
        for i, r in enumerate(rs):
            if not r.get("ok", True):
                odd.append(f"- idle {v}, repetition {i + 1}: not every browser negotiated or got its message ({r.get('negotiated')}, {r.get('received')}).")
    if s["logs"]:
        odd.append(f"- the relays wrote {len(s['logs'])} lines at --log-level warning or above, e.g.: "
                   + "; ".join(f"`{ln[:200]}`" for ln in s["logs"][:3]))
    lines += ["## What the script flagged", ""] + (odd or ["Nothing: every run completed, every message matched, no lag "
                                                          "or drop, no relay exit, no warning in the relays' logs."]) + [""]
    raw = {"deflate_compare": dc, "check": ck, "fanout": {f"{mo} {v}": rs for (mo, v), rs in fan.items()},
           "idle": idle, "attach": at, "loadgen": {f"{mo}{' --compression' if of else ''}": rs for (mo, of), rs in lg.items()},
           "deaths": s["deaths"]}
    lines += ["Raw JSON of every run:", "", "```json", json.dumps(raw, indent=1, default=str), "```", ""]
    images = plots(base, s)
    C.write_report(base, lines, 2, images)
    log(f"wrote {base}.md")


def plots(base, s):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fan = s["fan"]
    variants = [f"window {w}" for w in WINDOWS] + [f"rate {s['rate']}"]
    panels = (("million deliveries/s", lambda r: (r.get("deliveries_per_s") or 0) / 1e6, False),
              ("relay CPU µs per delivery, log scale", lambda r: r.get("server_cpu_us_per_delivery") or 0, True),
              ("bytes on the wire per delivery", lambda r: r.get("wire_bytes_per_delivery") or 0, False))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    width = 0.38
    for ax, (label, f, log_scale) in zip(axes, panels):
        for i, (mode, color) in enumerate((("shared", "tab:green"), ("off", "tab:gray"))):
            xs = [x + (i - 0.5) * width for x in range(len(variants))]
            vals = [[f(r) for r in fan.get((mode, v), []) if r.get("ok")] for v in variants]
            meds = [statistics.median(v) if v else 0 for v in vals]
            lo = [mm - min(v) if v else 0 for mm, v in zip(meds, vals)]
            hi = [max(v) - mm if v else 0 for mm, v in zip(meds, vals)]
            ax.bar(xs, meds, width=width, yerr=[lo, hi], capsize=3, color=color,
                   label=f"--compression {mode}")
        ax.set_xticks(range(len(variants)), variants, fontsize=8)
        ax.set_ylabel(label + " (median, bars: min–max)", fontsize=8)
        if log_scale:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"fan-out 1→{SUBSCRIBERS} of a terminal trace, browsers offering permessage-deflate", fontsize=10)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=100)
    plt.close(fig)
    return [("fan-out with and without compression", ".png")]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Writes the compression report again from a run's saved measurements "
                                             "(run the benchmark itself with compare.py --compression).")
    ap.add_argument("--report-from", required=True, help="the compression-state.pickle a run saved")
    a = ap.parse_args()
    with open(a.report_from, "rb") as f:
        write_report(pickle.load(f))
