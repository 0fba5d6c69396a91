"""HTTP/2 on the relay's port: h2c with prior knowledge on the plain port, h2
by ALPN with --tls, the admin routes over HTTP/2, WebSockets over HTTP/2
(RFC 8441 extended CONNECT), a stream that does not read, the connection-level
limits (protocol errors and floods), the "transports" counters of /stats, and
headless Chromium's terminal page over h2.

The HTTP/2 clients are in h2_client.py: `H2Client` (the `h2` library, one
blocking connection whose waits pump every stream) and `RawH2` (hand-made
frames for what a real client refuses to send)."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import time

import pytest
from h2.settings import SettingCodes

from h2_client import (
    CANCEL, ENHANCE_YOUR_CALM, FRAME_SIZE_ERROR, NO_ERROR, PREFACE, PROTOCOL_ERROR, REFUSED_STREAM,
    SETTINGS_ENABLE_CONNECT_PROTOCOL, ContinuationFrame, DataFrame, GoAwayFrame,
    H2Client, H2Peer, HeadersFrame, PingFrame, PriorityFrame, RawH2, RstStreamFrame, SettingsFrame,
    STREAM_CLOSED, error_name, h2_context, raw_frame,
)
from relay_client import (
    ACP_EVENT, INPUT, LAGGED, OUTPUT, POSITION, RESIZE, RESYNC, browser_token,
    build_query, control, describe, frame, new_pod, open_browser, parse_lagged, parse_position,
    relay_path, resize, run, runner_token, snapshot, stats, wait_stats,
)
from tls_client import log_events, read_until_closed, send_quietly, tcp_connect

BIG_QUEUE = str(16 * 1024 * 1024)  # --outbound-queue-bytes where no browser may lag
# ... and --replay-ring-bytes: a browser stream on the loop that is not its
# pod's home gets the pod's frames through a link bounded by the ring's size
# (docs/protocol.md §12); an unpaced burst larger than that may lag the link.


# ------------------------------------------------------------------ fixtures


@pytest.fixture(params=["h2c", "h2"])
def start_h2_relay(request, start_relay):
    """start(*args) -> Relay: plain (h2c by prior knowledge) or --tls (h2 by
    ALPN; relay.h2_ssl is a client context offering only h2, relay.client_ssl
    the conftest one for urllib and websockets)."""
    if request.param == "h2c":
        return start_relay
    certs = request.getfixturevalue("tls_certs")

    def start(*args: str, **kw):
        relay = start_relay(*certs.relay_args(), *args, tls=certs.client_context(), **kw)
        relay.h2_ssl = h2_context(certs)
        return relay

    return start


def runner_path(pod: str, *, prefixed: bool = False, bearer: bool = False, **tok) -> tuple[str, list]:
    token = runner_token(pod, **tok)
    if bearer:
        return relay_path("runner", prefixed), [("authorization", f"Bearer {token}")]
    return relay_path("runner", prefixed) + build_query(token), []


def browser_path(pod: str, *, prefixed: bool = False, bearer: bool = False, ext: bool = False,
                 user_id: int = 1001, **tok) -> tuple[str, list]:
    token = browser_token(pod, user_id=user_id, **tok)
    if bearer:
        return relay_path("browser", prefixed) + build_query(None, ext=ext), [("authorization", f"Bearer {token}")]
    return relay_path("browser", prefixed) + build_query(token, ext=ext), []


def h2_runner(client: H2Client, pod: str, name: str = "runner", **kw) -> H2Peer:
    path, headers = runner_path(pod, **kw)
    st = client.connect_ws(path, headers=headers, name=name)
    assert st.status == 200, f"{name}: CONNECT {path[:40]}... answered {st.status} {st.text()!r}"
    return H2Peer(st, name, "runner")


def h2_browser(client: H2Client, pod: str, name: str = "browser", *, ack: bool = True,
               ext: bool = False, **kw) -> H2Peer:
    path, headers = browser_path(pod, ext=ext, **kw)
    st = client.connect_ws(path, headers=headers, ack=ack, name=name)
    assert st.status == 200, f"{name}: CONNECT {path[:40]}... answered {st.status} {st.text()!r}"
    return H2Peer(st, name, "browser", ext=ext)


def skip_resyncs(runner: H2Peer, timeout: float = 5.0) -> tuple[int, bytes]:
    """The runner's next frame that is not a relay Resync (0x0A, sent when a
    browser joins a pod without a cached Snapshot)."""
    while True:
        t, p = runner.recv(timeout)
        if not (t == RESYNC and not p):
            return t, p


def mixed_output(n: int, seed: int) -> list[bytes]:
    """Runner frames: Output of many sizes (1 B ... 64 KiB), Control, AcpEvent,
    a Snapshot and an unknown type."""
    rng = random.Random(seed)
    sizes = [1, 2, 7, 100, 1000, 4095, 4096, 16383, 16384, 16385, 65535]
    out = []
    for i in range(n):
        if i % 40 == 39:
            out.append(frame(OUTPUT, rng.randbytes(65536)))
        elif i % 53 == 5:
            out.append(control({"type": "status", "i": i}))
        elif i % 61 == 7:
            out.append(frame(ACP_EVENT, json.dumps({"event": "tool_call", "i": i}).encode()))
        elif i == n // 2:
            out.append(snapshot(f"mid-{i}"))
        elif i == n // 2 + 1:
            out.append(frame(0x1F, b"unknown runner type"))
        else:
            out.append(frame(OUTPUT, i.to_bytes(4, "big") + rng.randbytes(rng.choice(sizes))))
    return out


def transports(relay) -> dict:
    s = stats(relay)
    assert "transports" in s, f"/stats has no \"transports\" object: {s}"
    return s["transports"]


# ----------------------------------------------------- 1. command-line clients


def test_nghttp_health(start_h2_relay, tls_certs):
    """`nghttp -nv` GET /health over h2c (prior knowledge) and over TLS (ALPN
    h2): the relay's SETTINGS (max streams 128, initial window 1 MiB, max
    header list 16384, ENABLE_CONNECT_PROTOCOL 1) and :status 200 with
    content-type and content-length, and nghttp exits 0."""
    relay = start_h2_relay()
    argv = ["nghttp", "-nv", relay.url("/health")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{out}"
    assert re.search(r"recv SETTINGS frame <length=\d+, flags=0x00, stream_id=0>", out), out
    for setting in ("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128",
                    "SETTINGS_INITIAL_WINDOW_SIZE(0x04):1048576",
                    "SETTINGS_MAX_HEADER_LIST_SIZE(0x06):16384",
                    "SETTINGS_ENABLE_CONNECT_PROTOCOL(0x08):1"):
        assert setting in out, f"{setting} not in the relay's SETTINGS:\n{out}"
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert re.search(r"recv \(stream_id=\d+\) content-type: application/json", out), out
    assert re.search(r"recv \(stream_id=\d+\) content-length: 15", out), out
    assert re.search(r"recv DATA frame <length=15, flags=0x01", out), out
    if relay.tls:
        assert "h2" in out and "The negotiated protocol: h2" in out, out


def test_curl_http2_and_http1_on_one_port(start_h2_relay, tls_certs):
    """curl --http2-prior-knowledge (h2c) / curl --http2 -k (TLS) gets
    {"status":"ok"} over HTTP/2; plain HTTP/1.1 curl on the same port still
    gets it over HTTP/1.1."""
    relay = start_h2_relay()
    url = relay.url("/health")
    h2_flags = ["--http2", "-k"] if relay.tls else ["--http2-prior-knowledge"]
    h1_flags = ["--http1.1", "-k"] if relay.tls else ["--http1.1"]
    for flags, version in ((h2_flags, "2"), (h1_flags, "1.1")):
        argv = ["curl", "-sS", "--max-time", "10", *flags, "-w", "\n%{http_code} %{http_version}", url]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert proc.returncode == 0, f"{argv}: exit {proc.returncode} {proc.stderr}"
        body, _, tail = proc.stdout.rpartition("\n")
        assert tail == f"200 {version}", f"{argv}: got {tail!r} (want 200 {version}); body {body!r}"
        assert json.loads(body) == {"status": "ok"}, body


# ------------------------------------------------------- 2. admin over HTTP/2


def test_settings_and_admin_routes_multiplexed(start_h2_relay):
    """The relay's SETTINGS carry ENABLE_CONNECT_PROTOCOL = 1; /health,
    /stats, /ready, /metrics (and /relay/health) sent at once on one
    connection each answer :status 200 with a content-type and a
    content-length equal to the body's length."""
    relay = start_h2_relay()
    c = H2Client(relay)
    try:
        assert c.remote_settings.get(SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1, c.remote_settings
        paths = ["/health", "/stats", "/ready", "/metrics", "/relay/health"]
        streams = [c.request("GET", p) for p in paths]
        for st in streams:
            st.wait_response()
            st.wait_end()
        for p, st in zip(paths, streams):
            assert st.status == 200, f"{p}: {st.status} {st.text()!r}"
            assert st.headers.get("content-type"), f"{p}: no content-type: {st.headers}"
            assert int(st.headers.get("content-length", -1)) == len(st.body), f"{p}: {st.headers} vs {len(st.body)} B"
        assert json.loads(streams[0].body) == {"status": "ok"}
        assert "active_channels" in json.loads(streams[1].body)
        assert b"relay_connections" in streams[3].body
        # The connection is still usable afterwards.
        assert c.get("/health")[0] == 200
    finally:
        c.close()


# ----------------------------------------------------------- 3. RFC 8441


def test_ws_over_h2_paths_and_token_places(start_h2_relay):
    """On one connection, for /runner/relay + /browser/relay and the /relay/
    prefixed paths, with the token in ?token= and in authorization: Bearer:
    CONNECT :protocol websocket answers 200, the runner's Output reaches the
    browser and the browser's Input the runner, byte for byte."""
    relay = start_h2_relay()
    c = H2Client(relay)
    try:
        for prefixed in (False, True):
            for bearer in (False, True):
                label = f"prefixed={prefixed} bearer={bearer}"
                pod = new_pod()
                r = h2_runner(c, pod, name=f"runner({label})", prefixed=prefixed, bearer=bearer)
                b = h2_browser(c, pod, name=f"browser({label})", prefixed=prefixed, bearer=bearer)
                out = frame(OUTPUT, f"out {label} ".encode() + bytes(range(256)))
                r.send(out)
                b.expect_message(out)
                typed = frame(INPUT, f"in {label}".encode())
                b.send(typed)
                t, p = skip_resyncs(r)
                assert frame(t, p) == typed, f"{label}: runner got {describe(t, p)}"
    finally:
        c.close()


def test_runner_and_three_browsers_on_one_connection(start_h2_relay):
    """A runner and three browsers as four streams of ONE connection: 400
    runner frames (Output up to 64 KiB, Control, AcpEvent, a Snapshot, an
    unknown type) reach all three browsers identically and in order; 60
    frames from each browser (Input, a Resize) reach the runner in each
    browser's order."""
    relay = start_h2_relay("--outbound-queue-bytes", BIG_QUEUE, "--replay-ring-bytes", BIG_QUEUE)
    outputs = mixed_output(400, seed=11)
    inputs = {k: [frame(INPUT, f"b{k}:{j}:".encode() + random.Random(k * 1000 + j).randbytes(j * 37))
                  if j != 30 else resize(100 + k, 40 + k) for j in range(60)] for k in range(3)}
    c = H2Client(relay)
    try:
        pod = new_pod()
        runner = h2_runner(c, pod)
        browsers = [h2_browser(c, pod, name=f"b{k}", user_id=2000 + k) for k in range(3)]
        runner.send(frame(OUTPUT, b"sync"))
        for b in browsers:
            b.expect(OUTPUT, b"sync")
        for k, b in enumerate(browsers):
            for msg in inputs[k]:
                b.send(msg)
        for msg in outputs:
            runner.send(msg)   # pumps: the browsers' data is taken in meanwhile
        for b in browsers:
            for i, want in enumerate(outputs):
                t, p = b.recv(timeout=10)
                assert (t, p) == (want[0], want[1:]), \
                    f"{b.name}: frame {i}: expected {describe(want[0], want[1:])}, got {describe(t, p)}"
        got: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        for _ in range(sum(len(v) for v in inputs.values())):
            t, p = skip_resyncs(runner, timeout=10)
            msg = frame(t, p)
            if t == RESIZE:
                k = p[1] - 100 if len(p) == 4 else -1
            else:
                assert t == INPUT, f"runner got {describe(t, p)}"
                k = int(p.split(b":", 1)[0][1:])
            assert k in got, f"runner got a frame nobody sent: {describe(t, p)}"
            got[k].append(msg)
        for k in range(3):
            assert got[k] == inputs[k], f"browser {k}: the runner got its frames out of order or altered"
    finally:
        c.close()


def test_h1_and_h2_browsers_on_one_pod(start_h2_relay):
    """A runner over HTTP/2, one browser over HTTP/2 (same connection) and one
    over HTTP/1.1 WebSocket (the websockets library): both browsers get every
    runner frame byte for byte, and both browsers' Input reaches the runner."""
    relay = start_h2_relay("--outbound-queue-bytes", BIG_QUEUE, "--replay-ring-bytes", BIG_QUEUE)
    outputs = mixed_output(200, seed=5)

    async def main():
        pod = new_pod()
        c = await asyncio.to_thread(H2Client, relay)
        try:
            runner = await asyncio.to_thread(h2_runner, c, pod)
            hb = await asyncio.to_thread(h2_browser, c, pod, "h2-browser", user_id=3001)
            wb = await open_browser(relay, pod, name="h1-browser", user_id=3002)
            await asyncio.to_thread(runner.send, frame(OUTPUT, b"sync"))
            await wb.expect(OUTPUT, b"sync")
            await asyncio.to_thread(hb.expect, OUTPUT, b"sync")

            def push_and_check_h2():
                for msg in outputs:
                    runner.send(msg)
                for i, want in enumerate(outputs):
                    t, p = hb.recv(timeout=10)
                    assert (t, p) == (want[0], want[1:]), \
                        f"h2-browser: frame {i}: expected {describe(want[0], want[1:])}, got {describe(t, p)}"

            async def check_h1():
                for i, want in enumerate(outputs):
                    t, p = await wb.recv(timeout=10)
                    assert (t, p) == (want[0], want[1:]), \
                        f"h1-browser: frame {i}: expected {describe(want[0], want[1:])}, got {describe(t, p)}"

            await asyncio.gather(asyncio.to_thread(push_and_check_h2), check_h1())

            await wb.send(frame(INPUT, b"from h1"))
            await asyncio.to_thread(hb.send, frame(INPUT, b"from h2"))
            got = set()
            for _ in range(2):
                t, p = await asyncio.to_thread(skip_resyncs, runner)
                got.add(frame(t, p))
            assert got == {frame(INPUT, b"from h1"), frame(INPUT, b"from h2")}, got
            await wb.close()
        finally:
            c.close()

    run(main(), timeout=60)


def test_refusals_are_plain_responses(start_h2_relay):
    """Refusals on one connection, each a complete response on its stream:
    bad / missing / wrong-role token → 401 with a short text body; an unknown
    path → 404; GET to a relay path → 400.
    The connection still works after them (a WebSocket and /health)."""
    relay = start_h2_relay()
    pod = new_pod()
    good = browser_token(pod)
    c = H2Client(relay)
    try:
        cases = [
            ("bad token", "/browser/relay?token=not.a.jwt", [], 401),
            ("tampered signature", "/browser/relay" + build_query(good[:-2] + ("AA" if good[-2:] != "AA" else "BB")), [], 401),
            ("missing token", "/runner/relay", [], 401),
            ("bad bearer", "/relay/browser/relay", [("authorization", "Bearer nope")], 401),
            ("runner token at /browser/relay", "/browser/relay" + build_query(runner_token(pod)), [], 401),
            ("unknown path", "/nowhere/relay" + build_query(good), [], 404),
        ]
        for what, path, headers, want in cases:
            st = c.connect_ws(path, headers=headers, name=what)
            assert st.status == want, f"{what}: CONNECT answered {st.status} {st.text()!r}, expected {want}"
            assert st.ended, f"{what}: the refusal did not end the stream"
            if want == 401:
                assert st.headers.get("content-type", "").startswith("text/plain"), f"{what}: {st.headers}"
                assert 0 < len(st.body) < 200 and st.text().endswith("\n"), f"{what}: body {st.text()!r}"
        for path in ("/browser/relay" + build_query(good), "/relay/runner/relay" + build_query(runner_token(pod))):
            status, _, body = c.get(path)
            assert status == 400, f"GET {path[:30]}... over HTTP/2: {status} {body!r}"
        assert c.goaway is None, f"a refusal ended the connection: {c.describe_goaway()}"
        r = h2_runner(c, pod)
        b = h2_browser(c, pod)
        r.send(frame(OUTPUT, b"after refusals"))
        b.expect(OUTPUT, b"after refusals")
        assert c.get("/health")[0] == 200
    finally:
        c.close()


@pytest.mark.parametrize("protocol", [None, "webtransport"], ids=["ordinary-connect", "protocol-webtransport"])
def test_connect_without_websocket_protocol_501(start_relay, protocol):
    """A CONNECT that is not an RFC 8441 WebSocket is answered 501 (a plain
    response, the connection carries on): an ordinary CONNECT (RFC 9113
    §8.5: :method and :authority only, well-formed) and an extended CONNECT
    with :protocol webtransport to /browser/relay."""
    relay = start_relay()
    pod = new_pod()
    c = H2Client(relay)
    try:
        what = f"CONNECT with :protocol {protocol}" if protocol else "ordinary CONNECT"
        st = c.start_connect("/browser/relay" + build_query(browser_token(pod)), protocol=protocol, name=what)
        c.wait(lambda: st.status is not None or st.reset is not None, 5, f"an answer to the {what}")
        assert st.status == 501, f"{what}: status {st.status} {st.text()!r}, RST_STREAM {error_name(st.reset)}"
        st.wait_end()
        assert st.text().strip(), f"{what}: 501 without a reason"
        assert c.get("/health")[0] == 200
    finally:
        c.close()


def test_draining_goaway_close_1001_and_503(start_h2_relay):
    """--shutdown-grace 30s. A runner and a browser over HTTP/2 (two
    connections). SIGTERM: each connection gets GOAWAY NO_ERROR whose last
    stream id covers its open stream, and each WebSocket stream gets Close
    1001; a new connection's CONNECT is answered 503, its /health 503."""
    relay = start_h2_relay("--shutdown-grace", "30s")
    pod = new_pod()
    cr, cb = H2Client(relay, name="runner-conn"), H2Client(relay, name="browser-conn")
    try:
        r = h2_runner(cr, pod)
        b = h2_browser(cb, pod)
        r.send(frame(OUTPUT, b"before"))
        b.expect(OUTPUT, b"before")
        relay.proc.send_signal(signal.SIGTERM)
        for client, peer in ((cr, r), (cb, b)):
            close, _ = peer.expect_close(timeout=10)
            assert close.close_code == 1001, f"{peer.name}: Close {close.close_code} {close.close_reason!r}"
            client.wait(lambda: client.goaway is not None, 10, "a GOAWAY", allow_closed=True)
            assert client.goaway is not None, f"{client.name}: no GOAWAY (connection {client.closed})"
            code, last, _ = client.goaway
            assert code == NO_ERROR, f"{client.name}: GOAWAY {client.describe_goaway()}"
            assert last >= peer.stream.sid, f"{client.name}: GOAWAY last_stream_id {last} < open stream {peer.stream.sid}"
        late = H2Client(relay, name="late")
        try:
            path, headers = browser_path(pod, user_id=4444)
            st = late.connect_ws(path, headers=headers)
            assert st.status == 503, f"CONNECT while draining: {st.status} {st.text()!r}"
            assert late.get("/health")[0] == 503
        finally:
            late.close()
        assert relay.proc.poll() is None, "the relay exited before its grace period"
    finally:
        cr.close()
        cb.close()


# --------------------------------------------------------- 4. a slow stream


QUEUE_BYTES = 256 * 1024
PUSH_FRAME = 16 * 1024
PUSH_FRAMES = 4 * 1024 * 1024 // PUSH_FRAME  # 4 MiB
_BLOCK = random.Random(9).randbytes(1 << 17)


def push_payload(i: int) -> bytes:
    off = (i * 7919) % (len(_BLOCK) - PUSH_FRAME)
    return i.to_bytes(4, "big") + _BLOCK[off:off + PUSH_FRAME - 4]


def push_index(p: bytes) -> int:
    i = int.from_bytes(p[:4], "big")
    assert p == push_payload(i), f"push frame {i} is corrupted ({len(p)} B)"
    return i


def test_slow_stream_is_lagged_others_get_everything(start_relay):
    """One h2c connection (client stream windows 64 KiB): a runner, browser A
    (ext) that reads its join frames and then never acknowledges data (no
    WINDOW_UPDATE for its stream), browser B that reads. Outbound queue
    256 KiB. The runner pushes 4 MiB in 16 KiB Output frames, kept at most
    128 KiB ahead of B:
    - B gets every frame, byte-exact, in order;
    - A's stream is held at its window (it gets no more than 64 KiB);
    then A reads again: what was sent before the lag (marker, push 0..k-1),
    then Lagged(dropped > 0), the cached Snapshot, a contiguous tail ending
    with the last push frame, Position(epoch, last); then a live frame reaches
    A and B and /health answers on the same connection."""
    relay = start_relay("--outbound-queue-bytes", str(QUEUE_BYTES), "--ping-interval", "120s")
    snap = snapshot("before-push")
    c = H2Client(relay, initial_window=65535)
    try:
        pod = new_pod()
        runner = h2_runner(c, pod)
        runner.send(snap)
        c.ping()
        a = h2_browser(c, pod, "A(not reading)", ext=True, user_id=66)
        a.expect_message(snap)
        epoch, seq0 = parse_position(a.expect(POSITION))
        a.stream.ack = False  # from here on A hands no window back
        b = h2_browser(c, pod, "B(reading)", user_id=67)
        b.expect_message(snap)
        runner.send(frame(OUTPUT, b"marker"))
        b.expect(OUTPUT, b"marker")

        got_b = 0
        for i in range(PUSH_FRAMES):
            runner.send(frame(OUTPUT, push_payload(i)))
            # Pacing: B (a Python client on one core with the runner) is kept
            # within 128 KiB, half the relay's queue bound.
            while got_b < i - 8:
                t, p = b.recv(timeout=10)
                assert t == OUTPUT and push_index(p) == got_b, f"B: expected push frame {got_b}, got {describe(t, p)}"
                got_b += 1
        while got_b < PUSH_FRAMES:
            t, p = b.recv(timeout=10)
            assert t == OUTPUT and push_index(p) == got_b, f"B: expected push frame {got_b}, got {describe(t, p)}"
            got_b += 1
        held = a.stream.received
        assert held <= 65535 + 4096, f"A's stream got {held} B without acknowledging (window 64 KiB)"

        # A reads again.
        a.stream.resume()
        frames = []
        while True:
            t, p = a.recv(timeout=15)
            frames.append((t, p))
            if t == POSITION:
                break
        pos = 0
        assert frames[pos] == (OUTPUT, b"marker"), describe(*frames[pos])
        pos += 1
        k = 0
        while frames[pos][0] == OUTPUT:
            assert push_index(frames[pos][1]) == k, f"A before the lag: frame {push_index(frames[pos][1])} where {k} was due"
            k += 1
            pos += 1
        assert k < PUSH_FRAMES, "A was never lagged (it got every frame of the push)"
        assert frames[pos][0] == LAGGED, f"A: expected 0x22 Lagged after push frame {k - 1}, got {describe(*frames[pos])}"
        assert parse_lagged(frames[pos][1]) > 0, "Lagged with dropped_frames = 0"
        pos += 1
        assert frame(*frames[pos]) == snap, f"A: expected the cached Snapshot after Lagged, got {describe(*frames[pos])}"
        pos += 1
        tail = []
        while frames[pos][0] == OUTPUT:
            tail.append(push_index(frames[pos][1]))
            pos += 1
        assert tail and tail == list(range(tail[0], PUSH_FRAMES)), f"A's tail is not contiguous up to the last frame: {tail[:3]}...{tail[-3:]}"
        assert frames[pos][0] == POSITION and pos == len(frames) - 1, [describe(*f) for f in frames[pos:]]
        assert parse_position(frames[pos][1]) == (epoch, seq0 + 1 + PUSH_FRAMES)
        print(f"\nslow h2 stream: {k} push frames before the lag, then a {len(tail)}-frame tail")

        runner.send(frame(OUTPUT, b"live"))
        a.expect(OUTPUT, b"live")
        b.expect(OUTPUT, b"live")
        assert c.get("/health")[0] == 200
        assert c.goaway is None, c.describe_goaway()
    finally:
        c.close()


# ---------------------------------------------------- 5. protocol errors


def raw_h2(relay) -> RawH2:
    raw = RawH2(relay)
    raw.handshake()
    return raw


def expect_goaway(raw: RawH2, code: int, timeout: float = 10.0) -> GoAwayFrame:
    g = raw.read_until(lambda f: isinstance(f, GoAwayFrame), timeout, f"a GOAWAY {error_name(code)}")
    assert g.error_code == code, f"GOAWAY {error_name(g.error_code)} (debug {g.additional_data!r}), expected {error_name(code)}"
    return g


@pytest.mark.parametrize("how", ["settings-missing", "bad-magic", "tls-http1-after-alpn-h2"])
def test_bad_preface_closes(start_relay, tls_certs, how):
    """A connection that does not start HTTP/2 properly is closed (with a
    GOAWAY PROTOCOL_ERROR if any GOAWAY): the magic followed by a PING instead
    of SETTINGS; a corrupted magic on the plain port; HTTP/1.1 bytes on a TLS
    connection whose ALPN chose h2."""
    if how == "tls-http1-after-alpn-h2":
        relay = start_relay(*tls_certs.relay_args(), tls=tls_certs.client_context())
        raw = RawH2(relay, ssl_context=h2_context(tls_certs))
        assert raw.sock.selected_alpn_protocol() == "h2"
        raw.send_bytes(f"GET /health HTTP/1.1\r\nHost: {relay.host}\r\n\r\n".encode())
        how_closed = raw.read_until_closed(10)
        gs = raw.goaways()
        assert all(g.error_code == PROTOCOL_ERROR for g in gs), raw.summary()
        assert b"HTTP/1.1 200" not in bytes(raw.buf), "the relay answered HTTP/1.1 on an h2 connection"
        print(f"\n{how}: closed ({how_closed}); {raw.summary()}")
        raw.close()
        return
    relay = start_relay()
    sock = tcp_connect(relay)
    if how == "settings-missing":
        ping = PingFrame(0)
        ping.opaque_data = b"12345678"
        send_quietly(sock, PREFACE + ping.serialize())
    else:
        send_quietly(sock, b"PRI * HTTP/2.0\r\n\r\nXY\r\n\r\n" + SettingsFrame(0).serialize())
    data, how_closed = read_until_closed(sock, 10)
    sock.close()
    print(f"\n{how}: closed ({how_closed}) after {len(data)} B: {data[:80]!r}")
    if data.startswith(b"HTTP/1."):
        status = int(data.split(b" ", 2)[1])
        assert how == "bad-magic" and 400 <= status < 600, data[:200]
        return
    # HTTP/2 frames: a SETTINGS perhaps, and a GOAWAY PROTOCOL_ERROR if any.
    frames = RawH2.parse_bytes(data)
    for g in (f for f in frames if isinstance(f, GoAwayFrame)):
        assert g.error_code == PROTOCOL_ERROR, f"GOAWAY {error_name(g.error_code)} {g.additional_data!r}"
    assert not any(isinstance(f, (HeadersFrame, DataFrame)) for f in frames), frames


def test_oversized_frame_goaway_frame_size_error(start_relay):
    """A DATA frame of 16385 bytes (the relay never raised
    SETTINGS_MAX_FRAME_SIZE from 16384) → GOAWAY FRAME_SIZE_ERROR."""
    relay = start_relay()
    raw = raw_h2(relay)
    raw.send(raw.get_headers(1, "/health", end_stream=False, method="POST"))
    big = DataFrame(1)
    big.data = b"x" * 16385
    raw.send(big)
    expect_goaway(raw, FRAME_SIZE_ERROR)
    raw.close()


def goaway_before_ping_ack(raw: RawH2, what: str) -> GoAwayFrame:
    """Sends a PING after the offending frame: the relay reads in order, so
    a connection error shows up as a GOAWAY before (instead of) its ACK."""
    ping = PingFrame(0)
    ping.opaque_data = b"afterbad"
    raw.send(ping)
    f = raw.read_until(lambda f: isinstance(f, GoAwayFrame)
                       or (isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == b"afterbad"),
                       10, f"a GOAWAY (or the PING ACK) after {what}")
    assert isinstance(f, GoAwayFrame), \
        f"{what}: no GOAWAY; the relay went on and ACKed the PING sent after it; frames: {raw.summary()}"
    return f


@pytest.mark.parametrize("order", ["reused", "lower"])
def test_bad_stream_id_goaway(start_relay, order):
    """HEADERS on stream 1 again after its request finished (reused) → GOAWAY
    PROTOCOL_ERROR, or STREAM_CLOSED, which RFC 9113 §5.1 allows for a frame
    on a closed stream; HEADERS opening stream 3 after stream 5 (lower) →
    GOAWAY PROTOCOL_ERROR (RFC 9113 §5.1.1: "an unexpected stream
    identifier MUST" be a connection error PROTOCOL_ERROR)."""
    relay = start_relay()
    raw = raw_h2(relay)
    first = 1 if order == "reused" else 5
    raw.send(raw.get_headers(first, "/health"))
    raw.read_until(lambda f: isinstance(f, DataFrame) and f.stream_id == first and "END_STREAM" in f.flags,
                   5, f"the response on stream {first}")
    assert raw.responses[first][":status"] == "200"
    bad = 1 if order == "reused" else 3
    raw.send(raw.get_headers(bad, "/health"))
    g = goaway_before_ping_ack(raw, f"HEADERS on stream {bad} after stream {first}")
    allowed = (PROTOCOL_ERROR, STREAM_CLOSED) if order == "reused" else (PROTOCOL_ERROR,)
    assert g.error_code in allowed, f"GOAWAY {error_name(g.error_code)} {g.additional_data!r}"
    answers = [f for f in raw.frames if isinstance(f, HeadersFrame) and f.stream_id == bad]
    assert len(answers) == (1 if order == "reused" else 0), f"the relay answered stream {bad} again: {raw.summary()}"
    raw.close()


def test_unknown_frame_types_are_ignored(start_relay):
    """Frames of unknown types (0xFA on stream 0, 0xFB on an idle stream, 0x20
    with flags) are ignored: GET /health on that connection answers 200 and
    no GOAWAY comes."""
    relay = start_relay()
    raw = raw_h2(relay)
    raw.send_bytes(raw_frame(0xFA, 0, 0, b"hello") + raw_frame(0xFB, 0xFF, 7, b"x" * 100)
                   + raw_frame(0x20, 0x1, 0, b""))
    raw.send(raw.get_headers(1, "/health"))
    raw.read_until(lambda f: isinstance(f, DataFrame) and f.stream_id == 1 and "END_STREAM" in f.flags,
                   5, "the /health response after unknown frames")
    assert raw.responses[1][":status"] == "200", raw.responses
    assert bytes(raw.data[1]) == b'{"status":"ok"}'
    assert not raw.goaways(), raw.summary()
    raw.close()


def flood(raw: RawH2, make_batch, *, max_frames: int, batch: int = 200, deadline: float = 20.0) -> int:
    """Sends batches until a GOAWAY arrives, the relay closes, `max_frames`
    have gone or `deadline` passes; reads between batches (so answers such as
    PING ACKs do not pile up on the relay's side). Returns frames sent."""
    sent = 0
    end = time.monotonic() + deadline
    while sent < max_frames and time.monotonic() < end:
        err = raw.send_bytes(make_batch(sent, batch))
        sent += batch
        if err:
            break
        raw._recv(0.001)
        if raw.eof or raw.goaways():
            break
    return sent


def test_rapid_reset_goaway_enhance_your_calm(start_relay):
    """Streams opened (GET /health) and reset at once with RST_STREAM CANCEL,
    up to 20,000 → GOAWAY ENHANCE_YOUR_CALM."""
    relay = start_relay()
    raw = raw_h2(relay)

    def batch(start, n):
        out = bytearray()
        for i in range(n):
            sid = 1 + 2 * (start + i)
            out += raw.get_headers(sid, "/health").serialize()
            rst = RstStreamFrame(sid)
            rst.error_code = CANCEL
            out += rst.serialize()
        return bytes(out)

    sent = flood(raw, batch, max_frames=20000, batch=50)
    print(f"\nrapid reset: {sent} streams sent; {raw.summary(4)}")
    expect_goaway(raw, ENHANCE_YOUR_CALM)
    raw.close()


def _ping_batch(start, n):
    out = bytearray()
    for i in range(n):
        f = PingFrame(0)
        f.opaque_data = (start + i).to_bytes(8, "big")
        out += f.serialize()
    return bytes(out)


def _settings_batch(start, n):
    return SettingsFrame(0).serialize() * n


def _priority_batch(start, n):
    f = PriorityFrame(1)
    f.depends_on, f.stream_weight = 0, 15
    return f.serialize() * n


def _empty_data_batch(start, n):
    return DataFrame(1).serialize() * n


@pytest.mark.parametrize("kind", ["ping", "settings", "priority", "empty-data"])
def test_control_frame_flood_goaway_enhance_your_calm(start_relay, kind):
    """Up to 100,000 PING / empty SETTINGS / PRIORITY frames, or empty DATA
    frames on an open WebSocket stream (/test/echo), sent as fast as the
    relay reads them → GOAWAY ENHANCE_YOUR_CALM."""
    relay = start_relay("--echo-endpoint")
    raw = raw_h2(relay)
    if kind in ("priority", "empty-data"):
        raw.send(raw.headers_frame(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                       (":path", "/test/echo"), (":authority", raw.authority()),
                                       ("sec-websocket-version", "13")], end_stream=False))
        raw.read_until(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 1, 5, "the echo CONNECT's answer")
        assert raw.responses[1][":status"] == "200", raw.responses
    make = {"ping": _ping_batch, "settings": _settings_batch, "priority": _priority_batch,
            "empty-data": _empty_data_batch}[kind]
    sent = flood(raw, make, max_frames=100_000)
    print(f"\n{kind} flood: {sent} frames sent; {raw.summary(4)}")
    expect_goaway(raw, ENHANCE_YOUR_CALM)
    raw.close()


def test_continuation_flood_ends_connection(start_relay):
    """HEADERS without END_HEADERS, then up to 20,000 empty CONTINUATION
    frames (the header list never grows): the relay ends the connection,
    with GOAWAY ENHANCE_YOUR_CALM (docs/protocol.md §1.2: at most 8)."""
    relay = start_relay()
    raw = raw_h2(relay)
    raw.send(raw.headers_frame(1, [(":method", "GET"), (":scheme", "http"), (":authority", raw.authority()),
                                   (":path", "/health")], end_stream=True, end_headers=False))
    sent = flood(raw, lambda s, n: ContinuationFrame(1).serialize() * n, max_frames=20000, batch=500)
    how = raw.read_until_closed(10)
    print(f"\ncontinuation flood: {sent} frames sent, connection {how}; {raw.summary(4)}")
    assert 1 not in raw.responses, f"the relay answered the request: {raw.responses}"
    # docs/protocol.md §1.2: more than 8 CONTINUATION frames → GOAWAY ENHANCE_YOUR_CALM.
    assert [g.error_code for g in raw.goaways()] == [ENHANCE_YOUR_CALM], raw.summary()


def test_silent_connection_closed_lively_one_kept(start_relay):
    """--ping-interval 1s. A raw connection that never answers the relay's
    PINGs is closed (docs/protocol.md §1.2: nothing heard for two
    intervals), while an h2 connection opened at the same time, which
    answers them, is still open and serves /health afterwards."""
    relay = start_relay("--ping-interval", "1s")
    raw = raw_h2(relay)
    lively = H2Client(relay, name="lively")
    try:
        deadline = time.monotonic() + 15
        while not raw.eof:
            assert time.monotonic() < deadline, f"the silent connection is still open after 15 s: {raw.summary()}"
            lively.pump(0.02)
            raw._recv(0.02)
        pings = [f for f in raw.frames if isinstance(f, PingFrame) and "ACK" not in f.flags]
        print(f"\nsilent connection: {raw.eof} after {len(pings)} PINGs; {raw.summary(3)}")
        assert pings, f"the relay closed the silent connection without ever sending it a PING: {raw.summary()}"
        assert lively.goaway is None and not lively.closed, f"lively: {lively.closed} {lively.describe_goaway()}"
        assert lively.get("/health")[0] == 200
    finally:
        raw.close()
        lively.close()


def test_header_list_too_large_431(start_h2_relay):
    """A request whose header list is larger than 16384 (RFC 9113 size) gets
    :status 431; one of about 8 KiB gets 200; the connection carries on."""
    relay = start_h2_relay()
    c = H2Client(relay)
    try:
        status, _, body = c.get("/health", headers=[("x-fill", "a" * 8000)])
        assert status == 200, f"8 KB header: {status} {body!r}"
        status, headers, body = c.get("/health", headers=[("x-big", "a" * 20000)])
        assert status == 431, f"20 KB header: {status} {headers} {body!r}"
        status, _, body = c.get("/health", headers=[(f"x-h{i}", "b" * 100) for i in range(200)])
        assert status == 431, f"200 headers of 100 B: {status} {body!r}"
        assert c.goaway is None, c.describe_goaway()
        assert c.get("/health")[0] == 200
    finally:
        c.close()


def test_max_streams_is_enforced_on_the_connection_that_breaks_it(start_relay):
    """--http2-max-streams 4: SETTINGS say 4; a runner and three browsers of a
    pod open four streams and work. A fifth CONNECT from a client that ignores
    the limit it acknowledged ends that connection with GOAWAY PROTOCOL_ERROR
    (nghttp2 treats it as a connection error; RFC 9113 §5.1.2 asks for a
    stream error, see docs/protocol.md §1.2), is counted in /stats goaways,
    and the relay goes on serving other connections."""
    relay = start_relay("--http2-max-streams", "4")
    c = H2Client(relay)
    try:
        assert c.remote_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS) == 4, c.remote_settings
        pod = new_pod()
        runner = h2_runner(c, pod)
        browsers = [h2_browser(c, pod, name=f"b{k}", user_id=500 + k) for k in range(3)]
        runner.send(frame(OUTPUT, b"to all"))
        for b in browsers:
            b.expect(OUTPUT, b"to all")
            b.send(frame(INPUT, b.name.encode()))
        got = {frame(*skip_resyncs(runner)) for _ in browsers}
        assert got == {frame(INPUT, b.name.encode()) for b in browsers}, got
        # Let the client break the limit.
        c.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1000
        c.conn.remote_settings.acknowledge()
        path, headers = browser_path(pod, user_id=599)
        fifth = c.start_connect(path, headers=headers, name="fifth")
        c.wait(lambda: c.goaway is not None or fifth.status is not None, 5, "an answer to the fifth stream")
        assert fifth.status is None, f"the fifth stream was answered {fifth.status} {fifth.text()!r}"
        assert c.goaway is not None and c.goaway[0] == PROTOCOL_ERROR, c.describe_goaway()
    finally:
        c.close()
    other = H2Client(relay)
    try:
        pod = new_pod()
        runner = h2_runner(other, pod)
        b = h2_browser(other, pod, name="other", user_id=700)
        runner.send(frame(OUTPUT, b"still serving"))
        b.expect(OUTPUT, b"still serving")
    finally:
        other.close()
    with relay.urlopen("/stats") as resp:
        goaways = json.loads(resp.read())["transports"]["goaways"]
    assert any("max concurrent streams" in k for k in goaways), goaways


# --------------------------------------------------------- 6. /stats


def test_stats_transports(start_relay):
    """An h2c connection with 2 WebSocket streams open: /stats "transports"
    shows connections.h2c >= 1 and streams["ws-over-h2"] == 2; after both
    streams are closed, streams["ws-over-h2"] == 0 and streams_total counts
    them."""
    relay = start_relay()
    t0 = transports(relay)
    for key in ("connections", "connections_total", "streams", "streams_total", "goaways"):
        assert key in t0, f"transports has no {key!r}: {t0}"
    assert set(t0["connections"]) >= {"h1", "h2c", "h2"}, t0
    assert set(t0["streams"]) >= {"ws", "ws-over-h2", "grpc", "h2-request"}, t0
    c = H2Client(relay)
    try:
        pod = new_pod()
        r = h2_runner(c, pod)
        b = h2_browser(c, pod)

        async def open_counts():
            return await wait_stats(
                relay, lambda s: s.get("transports", {}).get("streams", {}).get("ws-over-h2") == 2
                and s["transports"]["connections"].get("h2c", 0) >= 1, what="2 ws-over-h2 streams on h2c")

        s = run(open_counts(), 10)["transports"]
        assert s["connections_total"]["h2c"] >= 1, s
        # Over the h2 connection itself: a finished request stream is counted.
        assert c.get("/health")[0] == 200
        status, _, body = c.get("/stats")
        assert status == 200
        t = json.loads(body)["transports"]
        assert t["streams"]["ws-over-h2"] == 2, t
        assert t["streams_total"]["h2-request"] >= 1, t
        for p in (b, r):
            close = p.close(1000)
            assert close.close_code == 1000, (p.name, close)

        async def closed_counts():
            return await wait_stats(
                relay, lambda s: s["transports"]["streams"]["ws-over-h2"] == 0, what="no ws-over-h2 stream")

        t = run(closed_counts(), 10)["transports"]
        assert t["streams_total"]["ws-over-h2"] >= 2, t
    finally:
        c.close()



def test_stats_counts_goaways(start_relay):
    """/stats transports.goaways counts the connections the relay ended with
    a GOAWAY, by reason: one ended for a 9-byte PING (FRAME_SIZE_ERROR) and
    one for a PING flood (ENHANCE_YOUR_CALM) add 2 to the total."""
    relay = start_relay()
    before = transports(relay)["goaways"]
    raw = raw_h2(relay)
    raw.send_bytes(raw_frame(0x6, 0, 0, b"123456789"))  # PING with 9 bytes
    expect_goaway(raw, FRAME_SIZE_ERROR)
    raw.close()
    raw = raw_h2(relay)
    flood(raw, _ping_batch, max_frames=100_000)
    expect_goaway(raw, ENHANCE_YOUR_CALM)
    raw.close()

    async def counted():
        return await wait_stats(relay, lambda s: sum(s["transports"]["goaways"].values()) >= sum(before.values()) + 2,
                                what="both GOAWAYs counted")

    try:
        after = run(counted(), 10)["transports"]["goaways"]
    except AssertionError as e:
        raise AssertionError(f"goaways before: {before}; {e}") from None
    print(f"\ngoaways: {before} -> {after}")


def test_ws_close_over_h2_frees_the_stream(start_relay):
    """The closing handshake over HTTP/2 (RFC 8441 §5: END_STREAM is the
    FIN). A browser that sends Close gets Close and END_STREAM, then
    RST_STREAM NO_ERROR if it has not ended its side by then (RFC 9113 §8.1,
    docs/protocol.md §1.2): a polite browser that ends its side at once may
    find the stream already reset. Either way /stats then shows no
    ws-over-h2 stream and no subscriber; a browser that never ends its side
    is let go all the same."""
    relay = start_relay()
    c = H2Client(relay)
    try:
        for polite in (True, False):
            pod = new_pod()
            b = h2_browser(c, pod, name="polite" if polite else "never-ends")
            b.stream.send_close(1000)
            close, _ = b.expect_close()
            assert close.close_code == 1000, close
            c.wait(lambda: b.stream.ended or b.stream.reset is not None, 5, "END_STREAM after the Close")
            if polite and b.stream.reset is None:
                try:
                    b.stream.end()
                except Exception as e:  # the relay's RST_STREAM NO_ERROR crossed our END_STREAM
                    assert "NO_ERROR" in str(e), e
            if b.stream.reset is not None:
                assert b.stream.reset == 0, f"reset with {b.stream.reset}, not NO_ERROR"

            def gone(s):
                return (s["transports"]["streams"]["ws-over-h2"] == 0
                        and s["pending_subscribers"] == 0 and s["total_subscribers"] == 0)

            s = run(wait_stats(relay, gone, timeout=8, what=f"{b.name}'s stream and subscriber gone"), 15)
            assert s["transports"]["streams_total"]["ws-over-h2"] >= 1
    finally:
        c.close()


# ------------------------------------------- 7. the relay outlives its clients


def test_connection_closed_with_runner_and_browser_streams(start_relay):
    """Eight times: one h2c connection carries a runner and a browser of a
    pod (a frame each way), then the client drops the TCP connection. The
    relay keeps running and answers /health after each."""
    relay = start_relay()
    for i in range(8):
        c = H2Client(relay)
        pod = new_pod()
        r = h2_runner(c, pod)
        b = h2_browser(c, pod)
        r.send(frame(OUTPUT, b"x"))
        b.expect(OUTPUT, b"x")
        c.sock.close()
        time.sleep(0.3)
        try:
            with relay.urlopen("/health") as resp:
                assert resp.status == 200
        except OSError as e:
            time.sleep(0.5)
            raise AssertionError(f"round {i}: /health failed ({e!r}); relay exit status {relay.proc.poll()}") from None
        assert relay.proc.poll() is None, \
            f"round {i}: the relay died ({relay.proc.returncode}) when the connection closed"


# ------------------------------------------------- 8. Chromium over h2


def test_chromium_terminal_page_over_h2(tmp_path, tls_certs):
    """`relay --dev --tls`: headless Chromium (--ignore-certificate-errors)
    loads the terminal page over https (ALPN h2), typing round-trips through
    the demo pod's shell, and the page's WebSocket came over HTTP/2 (RFC
    8441): /stats transports.streams["ws-over-h2"] >= 1 while the page is
    open, and the relay logged the browser with stream=ws-over-h2."""
    pytest.importorskip("selenium")
    from test_browser_terminal import DevRelay, drive_terminal, start_chromium

    relay = DevRelay(tmp_path, *tls_certs.relay_args(), scheme="https")
    driver = None
    try:
        driver = start_chromium(tmp_path, "--ignore-certificate-errors")
        drive_terminal(relay, driver, tmp_path)
        proto = driver.execute_script(
            "const e = performance.getEntriesByType('navigation')[0]; return e && e.nextHopProtocol;")
        events = log_events(relay.stderr())
        browsers = [e for e in events if e.get("msg") == "browser connected"]

        class _R:  # what relay_client.stats needs
            host, port = "127.0.0.1", relay.port
            client_ssl = tls_certs.client_context()
            tls = True

            @staticmethod
            def url(path):
                return f"https://127.0.0.1:{relay.port}{path}"

        s = stats(_R)
        print(f"\npage nextHopProtocol={proto!r}; browser log lines: {browsers}; transports: {s.get('transports')}")
        assert proto == "h2", f"the page itself did not load over h2 (nextHopProtocol {proto!r})"
        assert browsers, f"no 'browser connected' line:\n{relay.stderr()[-3000:]}"
        assert any(e.get("stream") == "ws-over-h2" for e in browsers), \
            f"the page's WebSocket did not come over HTTP/2: {browsers}"
        assert "transports" in s, f"/stats has no transports: {s}"
        assert s["transports"]["streams"].get("ws-over-h2", 0) >= 1, s["transports"]
    finally:
        if driver is not None:
            driver.quit()
        lingering = relay.stop()
        assert not lingering, f"processes left after stopping the dev relay (killed now): {lingering}"
