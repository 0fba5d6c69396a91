"""The relay's gRPC interface (proto/relay/v1/relay.proto; docs/protocol.md):
`relay.v1.Relay/Attach`, one bidirectional call per runner or browser over
HTTP/2 (h2c with prior knowledge on the plain port, h2 by ALPN with --tls),
each message a `Frame { bytes data = 1; }` carrying one relay envelope.

The clients are the stubs generated from the proto at test time (grpc_stubs.py)
and, where the wire itself is the subject, a raw HTTP/2 client on `h2`.
"""

from __future__ import annotations

import asyncio
import random
import signal
import struct

import grpc
import grpc.aio
import pytest

from grpc_stubs import (  # noqa: F401  (relay_stubs: the session fixture)
    ATTACH, GrpcPeer, RawH2, call_metadata, grpc_message, insecure_channel,
    parse_grpc_messages, relay_stubs, secure_channel,
)
from relay_client import (
    ACP_EVENT, CONTROL, INPUT, OUTPUT, PING, POSITION, RESYNC, RUNNER_DISCONNECTED, Collector, Pacer,
    browser_token, control, describe, frame, new_pod, open_browser, open_raw_runner, open_runner,
    parse_position, run, runner_token, snapshot, stats, tamper_signature, wait_stats,
)
from test_relay_routing import input_stream, sender_of

MiB = 1 << 20

# Envelope lengths at the edges of the encodings the relay writes: a server
# WebSocket header of 2/4/10 bytes (what the pod builds once), the protobuf
# varint of `data` (1/2/3 bytes), one byte (a type alone).
EDGE_LENGTHS = [1, 2, 125, 126, 127, 128, 129, 16383, 16384, 16385, 65535, 65536, 65537, 200_000]


def runner_stream(seed: int, n_small: int = 600, big: bool = True) -> list[bytes]:
    """Runner frames: the edge lengths, a 1 MiB Output (`big`), `n_small`
    small Outputs, and a Control, an AcpEvent, a Snapshot, a Ping and an
    unknown type mixed in; every one must reach every browser, in order."""
    rng = random.Random(seed)
    out = [frame(PING)]  # a bare type byte
    for n in EDGE_LENGTHS[1:]:
        out.append(frame(OUTPUT, rng.randbytes(n - 1)))
    if big:
        out.append(frame(OUTPUT, rng.randbytes(MiB)))
    for i in range(n_small):
        if i == 100:
            out.append(control({"type": "status", "i": i}))
        elif i == 200:
            out.append(frame(ACP_EVENT, b'{"event":"tool_call"}'))
        elif i == 300:
            out.append(snapshot(f"mid-{seed}"))
        elif i == 400:
            out.append(frame(0x1F, b"unknown runner type"))
        else:
            out.append(frame(OUTPUT, f"{seed}:{i}:".encode() + rng.randbytes(rng.choice([0, 1, 7, 60, 300]))))
    return out


def fnv1a64(key: str) -> int:
    h = 0xCBF29CE484222325
    for b in key.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def pods_on_loops(loops: int, per_loop: int = 1) -> list[tuple[str, int]]:
    """New pod keys whose home loop (the relay places a pod on loop
    FNV-1a-64(pod_key) % loops) covers every loop `per_loop` times: with
    them, the calls of one HTTP/2 connection (which lives on one loop) are
    both on their pod's home loop and elsewhere (through the pod's mirror
    for a browser, a bridge for a runner). If the placement ever changes
    the keys are still valid, only no longer guaranteed to spread."""
    found: dict[int, list[str]] = {i: [] for i in range(loops)}
    while any(len(v) < per_loop for v in found.values()):
        pod = new_pod()
        home = fnv1a64(pod) % loops
        if len(found[home]) < per_loop:
            found[home].append(pod)
    return [(pod, home) for home, pods in found.items() for pod in pods]


def ws_client_frame(payload: bytes) -> bytes:
    """One masked binary WebSocket frame (mask key 0, so the payload is sent as is)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n)
    return head + bytes(4) + payload


async def exchange(runner, browsers, outputs: list[bytes], ks: list[int], marker: bytes = b"sync-marker") -> None:
    """`runner` sends `outputs` (paced below the relay's 1 MiB outbound
    bound, so a correct relay never drops); every browser must get them
    byte for byte and in order. Meanwhile browser i sends
    input_stream(ks[i]); the runner must get each browser's frames byte for
    byte and in that browser's order (Resync from the relay skipped)."""
    await runner.send(frame(OUTPUT, marker))
    for b in browsers:
        skipped, _ = await b.recv_until(lambda t, p: t == OUTPUT and p == marker, timeout=10, what="sync marker")
        assert not skipped, f"{b.name}: frames before the first runner frame: {[describe(*f) for f in skipped]}"

    pacer = Pacer(window=512 * 1024)
    collectors = [Collector(b, outputs.__getitem__, len(outputs), pacer) for b in browsers]
    inputs = {k: input_stream(k) for k in ks}

    async def push():
        for msg in outputs:
            await pacer.room_for(len(msg))
            await runner.send(msg)

    async def type_into(b, k):
        for msg in inputs[k]:
            await b.send(msg)

    async def runner_reads():
        got = {k: [] for k in ks}
        total = sum(len(v) for v in inputs.values())
        n = 0
        while n < total:
            t, p = await runner.recv(timeout=10)
            if t == RESYNC and not p:
                continue  # the relay asks for a Snapshot when a browser joins and none is cached
            msg = frame(t, p)
            k = sender_of(msg)
            assert k in got, f"{runner.name}: got a frame from browser {k}, which is not on this pod: {describe(t, p)}"
            got[k].append(msg)
            n += 1
        return got

    results = await asyncio.gather(
        push(), *(c.task for c in collectors), *(type_into(b, k) for b, k in zip(browsers, ks)), runner_reads())
    got = results[-1]
    for k in ks:
        assert len(got[k]) == len(inputs[k])
        for j, (a, b) in enumerate(zip(got[k], inputs[k])):
            assert a == b, f"browser {k} frame {j}: runner got {describe(a[0], a[1:])}, sent {describe(b[0], b[1:])}"


async def expect_ok_end(peer: GrpcPeer, allowed=(RESYNC,)) -> None:
    """After a half-close the call ends OK; frames read meanwhile are only `allowed` types."""
    await peer.half_close()
    end, frames = await peer.finish(timeout=10)
    assert end.code == grpc.StatusCode.OK, f"{peer.name}: half-closed call ended {end}"
    assert all(t in allowed for t, _ in frames), f"{peer.name}: after half-close got {[describe(*f) for f in frames]}"


async def expect_refused(peer: GrpcPeer, code: grpc.StatusCode, timeout: float = 10) -> str:
    end, frames = await peer.finish(timeout)
    assert end.code == code, f"{peer.name}: expected {code.name}, the call ended {end}"
    assert not frames, f"{peer.name}: a refused call got frames {[describe(*f) for f in frames]}"
    return end.details


# ----------------------------------------------------------------- 1, 2, 3


def test_grpc_runner_and_two_grpc_browsers(start_relay, relay_stubs):
    """A gRPC runner and two gRPC browsers, each on its own channel (own
    connection), on one pod: the runner's frames (edge lengths, 1 MiB, 600
    small ones) reach both browsers byte for byte and in order; each
    browser's 100 frames (Input up to 64 KiB, a Resize, an AcpCommand) reach
    the runner in order. A half-close then ends every call with OK.
    --loops 2: a browser whose connection the kernel gave to the loop that is
    not its pod's home gets the frames through that loop's mirror of the pod
    (test_large_frame_reaches_grpc_browsers_on_every_loop makes that certain)."""
    relay = start_relay("--loops", "2")
    outputs = runner_stream(seed=1)

    async def main():
        pod = new_pod()
        chans = [insecure_channel(relay) for _ in range(3)]
        runner = GrpcPeer(relay_stubs, chans[0], runner_token(pod), "grpc-runner", "runner")
        browsers = [GrpcPeer(relay_stubs, chans[1 + k], browser_token(pod, user_id=1000 + k), f"grpc-b{k}", "browser")
                    for k in range(2)]
        await exchange(runner, browsers, outputs, ks=[0, 1])
        for b in browsers:
            await expect_ok_end(b, allowed=())
        await expect_ok_end(runner)
        for ch in chans:
            await ch.close()

    run(main(), timeout=60)


def test_grpc_runner_with_websocket_browsers(start_relay, relay_stubs):
    """A gRPC runner; two WebSocket browsers (token in the query, and as
    Authorization: Bearer): frames both ways byte for byte, in order."""
    relay = start_relay("--loops", "2")
    outputs = runner_stream(seed=2, n_small=300)

    async def main():
        pod = new_pod()
        ch = insecure_channel(relay)
        runner = GrpcPeer(relay_stubs, ch, runner_token(pod), "grpc-runner", "runner")
        browsers = [await open_browser(relay, pod, name="ws-b0", user_id=1000),
                    await open_browser(relay, pod, name="ws-b1(bearer)", user_id=1001, bearer=True)]
        await exchange(runner, browsers, outputs, ks=[0, 1])
        for b in browsers:
            await b.close()
        await expect_ok_end(runner)
        await ch.close()

    run(main(), timeout=60)


def test_websocket_runner_with_grpc_browser(start_relay, relay_stubs):
    """A WebSocket runner; a gRPC browser (and a WebSocket browser beside
    it): frames both ways byte for byte, in order. --loops 2, as above."""
    relay = start_relay("--loops", "2")
    outputs = runner_stream(seed=3, n_small=300)

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod, name="ws-runner")
        ch = insecure_channel(relay)
        browsers = [GrpcPeer(relay_stubs, ch, browser_token(pod, user_id=1000), "grpc-b0", "browser"),
                    await open_browser(relay, pod, name="ws-b1", user_id=1001)]
        await exchange(runner, browsers, outputs, ks=[0, 1])
        await expect_ok_end(browsers[0], allowed=())
        await browsers[1].close()
        await runner.close()
        await ch.close()

    run(main(), timeout=60)


def test_calls_multiplexed_on_one_channel(start_relay, relay_stubs):
    """Two pods, each with a runner and a browser, all four calls on one
    channel: /stats shows one h2c connection carrying four gRPC streams,
    and each pod's frames (up to 200 KB; the 1 MiB case has its own test)
    go both ways byte for byte, in order, concurrently, and only within the
    pod. --loops 2 and the pods' homes on different loops: one pod's calls
    are on its home loop, the other's go through a bridge and a mirror."""
    relay = start_relay("--loops", "2")

    async def main():
        ch = insecure_channel(relay)
        pods = [pod for pod, _ in pods_on_loops(2)]
        runners = [GrpcPeer(relay_stubs, ch, runner_token(p), f"runner-{i}", "runner") for i, p in enumerate(pods)]
        browsers = [GrpcPeer(relay_stubs, ch, browser_token(p, user_id=1000 + i), f"browser-{i}", "browser")
                    for i, p in enumerate(pods)]
        s = await wait_stats(relay, lambda s: s["transports"]["streams"]["grpc"] == 4, timeout=10,
                             what="four open gRPC streams")
        assert s["transports"]["connections"]["h2c"] == 1, s["transports"]
        assert s["transports"]["connections_total"]["h2c"] == 1, s["transports"]
        await asyncio.gather(
            exchange(runners[0], [browsers[0]], runner_stream(seed=10, n_small=200, big=False), ks=[0], marker=b"pod-0"),
            exchange(runners[1], [browsers[1]], runner_stream(seed=11, n_small=200, big=False), ks=[1], marker=b"pod-1"),
        )
        s = await asyncio.to_thread(stats, relay)
        assert s["transports"]["connections_total"]["h2c"] == 1, f"the channel reconnected: {s['transports']}"
        for p in (*browsers, *runners):
            await expect_ok_end(p, allowed=(RESYNC, RUNNER_DISCONNECTED) if p.role == "browser" else (RESYNC,))
        await ch.close()

    run(main(), timeout=60)


# ------------------------------------------------------------------ 4, 5, 6


def test_refusals_unauthenticated_and_unimplemented(start_relay, relay_stubs):
    """Bad signature, expired and missing tokens end the call
    UNAUTHENTICATED with a message; an unknown method (or service) ends
    UNIMPLEMENTED. The channel stays usable: a runner and a browser on it
    then exchange frames."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        ch = insecure_channel(relay)
        bad = GrpcPeer(relay_stubs, ch, tamper_signature(browser_token(pod)), "bad-signature", "browser")
        details = await expect_refused(bad, grpc.StatusCode.UNAUTHENTICATED)
        assert "signature" in details, f"details: {details!r}"
        expired = GrpcPeer(relay_stubs, ch, runner_token(pod, ttl=-60), "expired", "runner")
        details = await expect_refused(expired, grpc.StatusCode.UNAUTHENTICATED)
        assert "expired" in details, f"details: {details!r}"
        missing = GrpcPeer(relay_stubs, ch, None, "no-token", "browser")
        details = await expect_refused(missing, grpc.StatusCode.UNAUTHENTICATED)
        assert "missing" in details, f"details: {details!r}"
        not_bearer = GrpcPeer(relay_stubs, ch, None, "basic-auth", "browser",
                              metadata=[("authorization", "Basic dXNlcjpwYXNz")])
        await expect_refused(not_bearer, grpc.StatusCode.UNAUTHENTICATED)

        for path in ("/relay.v1.Relay/Nope", "/other.v1.Service/Attach"):
            call = ch.stream_stream(path)(metadata=call_metadata(runner_token(pod)))
            try:
                got = await asyncio.wait_for(call.read(), 10)
            except grpc.aio.AioRpcError:
                got = None
            code = await asyncio.wait_for(call.code(), 10)
            assert code == grpc.StatusCode.UNIMPLEMENTED, f"{path}: {code} {await call.details()!r}"
            assert got in (None, grpc.aio.EOF), f"{path}: got a message {got!r}"

        runner = GrpcPeer(relay_stubs, ch, runner_token(pod), "runner", "runner")
        browser = GrpcPeer(relay_stubs, ch, browser_token(pod), "browser", "browser")
        await exchange(runner, [browser], [frame(OUTPUT, b"after refusals")], ks=[0])
        await ch.close()

    run(main(), timeout=45)


def test_message_over_max_size_is_resource_exhausted(start_relay, relay_stubs):
    """--max-message-size 4096: a 4000-byte message passes; a runner's
    10000-byte message ends its call RESOURCE_EXHAUSTED and never reaches the
    browser (which is told the runner left); a browser's ends its call the
    same way."""
    relay = start_relay("--max-message-size", "4096")

    async def main():
        pod = new_pod()
        ch = insecure_channel(relay)
        runner = GrpcPeer(relay_stubs, ch, runner_token(pod), "runner", "runner")
        browser = GrpcPeer(relay_stubs, ch, browser_token(pod), "browser", "browser")
        small = frame(OUTPUT, b"s" * 3999)
        await exchange(runner, [browser], [small], ks=[])
        await runner.send(frame(OUTPUT, b"L" * 9999))
        end, frames = await runner.finish(timeout=10)
        assert end.code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"runner: {end}"
        assert all(t == RESYNC for t, _ in frames), [describe(*f) for f in frames]
        t, p = await browser.recv(timeout=10)
        assert t == RUNNER_DISCONNECTED, f"browser: expected RunnerDisconnected, got {describe(t, p)}"

        other = GrpcPeer(relay_stubs, ch, browser_token(new_pod()), "browser-2", "browser")
        await other.send(frame(INPUT, b"i" * 9999))
        end, frames = await other.finish(timeout=10)
        assert end.code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"browser-2: {end}"
        await ch.close()

    run(main(), timeout=45)


def test_deadline_exceeded(start_relay, relay_stubs):
    """A browser call with a 1 s deadline on a pod that has no runner ends
    DEADLINE_EXCEEDED; the relay enforces grpc-timeout itself: a raw call
    with `grpc-timeout: 100m` (and no client-side deadline) is ended by the
    relay with trailers grpc-status 4."""
    relay = start_relay()

    async def main():
        ch = insecure_channel(relay)
        browser = GrpcPeer(relay_stubs, ch, browser_token(new_pod()), "browser", "browser", timeout=1.0)
        end, frames = await browser.finish(timeout=10)
        assert end.code == grpc.StatusCode.DEADLINE_EXCEEDED, f"{end}"
        assert not frames, [describe(*f) for f in frames]
        await ch.close()

        raw = await RawH2.connect(relay)
        call = await raw.start_call(metadata=[("authorization", f"Bearer {browser_token(new_pod())}"),
                                              ("grpc-timeout", "100m")])
        await raw.wait_for(lambda: call.ended, timeout=10, what="the relay ending the call")
        # Trailers with END_STREAM; a RST_STREAM(NO_ERROR) after them only
        # tells the client to stop sending (RFC 9113 §8.1).
        assert call.trailers is not None and call.reset in (None, 0), call.describe()
        assert call.grpc_status == "4", call.describe()
        assert not call.body, call.describe()
        await raw.close()

    run(main(), timeout=30)


# -------------------------------------------------------------- 7: raw h2


def test_raw_h2_trailers_only_refusals(start_relay):
    """A refused call is a trailers-only response: one HEADERS frame with
    END_STREAM carrying :status 200, content-type application/grpc,
    grpc-status and grpc-message; no DATA, no reset. The connection stays
    open and takes a valid call after the refusals."""
    relay = start_relay()

    async def main():
        raw = await RawH2.connect(relay)
        pod = new_pod()
        cases = [
            ([], ATTACH, "16"),
            ([("authorization", f"Bearer {tamper_signature(browser_token(pod))}")], ATTACH, "16"),
            ([("authorization", f"Bearer {runner_token(pod)}")], "/relay.v1.Relay/Nope", "12"),
        ]
        for md, path, status in cases:
            call = await raw.start_call(path, md)
            await raw.wait_for(lambda: call.ended, timeout=10, what=f"the answer to {path}")
            assert call.trailers_only, f"not trailers-only: {call.describe()}"
            assert call.reset is None and not call.data_frames and call.trailers is None, call.describe()
            assert call.header(":status") == "200", call.describe()
            assert (call.header("content-type") or "").startswith("application/grpc"), call.describe()
            assert call.grpc_status == status, call.describe()
            assert call.grpc_message, f"no grpc-message: {call.describe()}"
        assert not raw.eof and raw.goaway is None, "the relay closed the connection after refusals"

        ok = await raw.start_call(ATTACH, [("authorization", f"Bearer {browser_token(pod)}")])
        await raw.wait_for(lambda: ok.response_headers is not None, timeout=10, what="response headers")
        assert not ok.trailers_only and ok.header(":status") == "200", ok.describe()
        assert (ok.header("content-type") or "").startswith("application/grpc"), ok.describe()
        await raw.close()

    run(main(), timeout=30)


def test_raw_h2_split_messages_reach_browser(start_relay, relay_stubs):
    """A raw runner sends Frames cut across DATA frames in every way: byte
    by byte; the 5-byte prefix alone then the rest in pieces; two messages
    in one DATA frame; boundaries inside a prefix; 100 KiB and 1 MiB over
    many frames (flow control); a Frame with unknown fields and one with
    `data` twice (the last wins, as protobuf merges). A gRPC browser gets
    every envelope intact and in order. (One loop: the wire format is the
    subject here, routing across loops has its own tests.)"""
    relay = start_relay("--loops", "1")
    Frame = relay_stubs.Frame
    rng = random.Random(7)

    def enc(env: bytes) -> bytes:
        return grpc_message(Frame(data=env).SerializeToString())

    async def main():
        pod = new_pod()
        raw = await RawH2.connect(relay)
        runner = await raw.start_call(ATTACH, [("authorization", f"Bearer {runner_token(pod)}")])
        ch = insecure_channel(relay)
        browser = GrpcPeer(relay_stubs, ch, browser_token(pod), "browser", "browser")
        await raw.send_message(runner, Frame(data=frame(OUTPUT, b"marker")).SerializeToString())
        skipped, _ = await browser.recv_until(lambda t, p: t == OUTPUT and p == b"marker", timeout=10, what="marker")
        assert not skipped, [describe(*f) for f in skipped]

        step = 0

        async def check(*envelopes):
            # Each step is received before the next is sent: the browser is
            # never behind, so the relay has no reason to drop anything.
            nonlocal step
            step += 1
            for e in envelopes:
                t, p = await browser.recv(timeout=10)
                assert (t, p) == (e[0], e[1:]), f"step {step}: expected {describe(e[0], e[1:])}, got {describe(t, p)}"

        # 1. byte by byte
        e1 = frame(OUTPUT, b"byte-by-byte")
        m1 = enc(e1)
        await raw.send_data(runner, [m1[i:i + 1] for i in range(len(m1))])
        await check(e1)
        # 2. the prefix alone, then the rest in uneven pieces
        e2 = frame(OUTPUT, rng.randbytes(3000))
        m2 = enc(e2)
        await raw.send_data(runner, [m2[:5], m2[5:6], m2[6:8], m2[8:1000], m2[1000:]])
        await check(e2)
        # 3. two messages in one DATA frame
        e3, e4 = frame(OUTPUT, b"three"), frame(CONTROL, b'{"four":4}')
        await raw.send_data(runner, [enc(e3) + enc(e4)])
        await check(e3, e4)
        # 4. boundaries inside a prefix and inside the protobuf header
        e5, e6, e7 = frame(OUTPUT, rng.randbytes(200)), frame(OUTPUT, b"six"), frame(OUTPUT, rng.randbytes(130))
        blob = enc(e5) + enc(e6) + enc(e7)
        cuts = [3, 5, 6, 7, len(enc(e5)) + 2, len(enc(e5)) + 6, len(enc(e5) + enc(e6)) + 4, len(blob) - 1]
        await raw.send_data(runner, [blob[a:b] for a, b in zip([0] + cuts, cuts + [len(blob)])])
        await check(e5, e6, e7)
        # 5. 100 KiB and 1 MiB over many DATA frames
        for n in (100 * 1024, MiB):
            e = frame(OUTPUT, rng.randbytes(n))
            await raw.send_message(runner, Frame(data=e).SerializeToString())
            await check(e)
        # 6. unknown fields around `data` (varint, fixed64, fixed32, bytes)
        e10 = frame(OUTPUT, b"with unknown fields")
        body = (b"\x10\x96\x01" + b"\x19" + bytes(8) + Frame(data=e10).SerializeToString()
                + b"\x25" + bytes(4) + b"\x2a\x03abc")
        assert Frame.FromString(body).data == e10
        await raw.send_data(runner, [grpc_message(body)])
        await check(e10)
        # 7. `data` twice: the last one is the message's value
        e11 = frame(OUTPUT, b"second wins")
        body = Frame(data=frame(OUTPUT, b"first")).SerializeToString() + Frame(data=e11).SerializeToString()
        assert Frame.FromString(body).data == e11
        await raw.send_data(runner, [grpc_message(body)])
        await check(e11)

        assert runner.reset is None and not runner.ended, runner.describe()
        # The runner half-closes: the relay ends its call OK.
        await raw.end_stream(runner)
        await raw.wait_for(lambda: runner.ended, timeout=10, what="the end of the runner's call")
        assert runner.reset is None and runner.grpc_status == "0", runner.describe()
        await raw.close()
        await ch.close()

    run(main(), timeout=45)


def test_raw_h2_browser_receives_well_formed_messages(start_relay, relay_stubs):
    """A raw browser: the response HEADERS say :status 200 and
    application/grpc; the body is a run of 5-byte-prefixed messages (flag 0,
    exact length) that relay_pb2.Frame parses to the runner's envelopes, for
    every edge length and 1 MiB. An Input it sends byte by byte reaches the
    gRPC runner intact. Its half-close ends the call with trailers
    grpc-status 0. Each runner frame is sent once the browser has the one
    before (this client's default 64 KiB window must not make it a slow
    consumer); one loop, as above."""
    relay = start_relay("--loops", "1")
    Frame = relay_stubs.Frame
    rng = random.Random(9)
    outputs = [frame(OUTPUT, rng.randbytes(n - 1)) for n in EDGE_LENGTHS] + [frame(PING), frame(OUTPUT, rng.randbytes(MiB))]

    async def main():
        pod = new_pod()
        ch = insecure_channel(relay)
        runner = GrpcPeer(relay_stubs, ch, runner_token(pod), "runner", "runner")
        raw = await RawH2.connect(relay)
        await runner.send(frame(OUTPUT, b"marker"))
        browser = await raw.start_call(ATTACH, [("authorization", f"Bearer {browser_token(pod)}")])
        marker = grpc_message(Frame(data=frame(OUTPUT, b"marker")).SerializeToString())
        await raw.wait_for(lambda: len(browser.body) >= len(marker), timeout=10, what="the marker")
        assert browser.header(":status") == "200" and not browser.trailers_only, browser.describe()
        assert (browser.header("content-type") or "").startswith("application/grpc"), browser.describe()
        assert browser.header("grpc-status") is None, f"grpc-status in the response headers: {browser.describe()}"

        want = [frame(OUTPUT, b"marker")] + outputs
        total = len(marker)
        for i, e in enumerate(outputs):
            await runner.send(e)
            total += len(grpc_message(Frame(data=e).SerializeToString()))
            await raw.wait_for(lambda: len(browser.body) >= total, timeout=10,
                               what=f"runner frame {i} ({describe(e[0], e[1:])}): {total} B of messages")
        messages = parse_grpc_messages(bytes(browser.body))
        assert len(messages) == len(want), f"{len(messages)} messages, expected {len(want)}"
        for i, (m, e) in enumerate(zip(messages, want)):
            got = Frame.FromString(m).data
            assert got == e, f"message {i}: expected {describe(e[0], e[1:])}, got {describe(got[0], got[1:]) if got else 'empty'}"

        typed = frame(INPUT, b"typed one byte per DATA frame")
        msg = grpc_message(Frame(data=typed).SerializeToString())
        await raw.send_data(browser, [msg[i:i + 1] for i in range(len(msg))])
        _, (t, p) = await runner.recv_until(lambda t, p: t != RESYNC, timeout=10, what="the browser's Input")
        assert frame(t, p) == typed, describe(t, p)

        await raw.end_stream(browser)
        await raw.wait_for(lambda: browser.ended, timeout=10, what="the end of the browser's call")
        assert browser.reset is None and not browser.trailers_only, browser.describe()
        assert browser.trailers is not None and browser.grpc_status == "0", browser.describe()
        assert len(browser.body) == total, f"{len(browser.body) - total} B after the expected messages"
        await raw.close()
        await runner.close()
        await ch.close()

    run(main(), timeout=45)


# ------------------------------------------- large frames and the bound


def test_large_frame_reaches_grpc_browsers_on_every_loop(start_relay, relay_stubs):
    """--loops 2: gRPC browsers of four pods on one channel (one HTTP/2
    connection, so one loop), the pods' homes two on each loop: two browsers
    are on their pod's home loop, two get its frames through that loop's
    mirror of the pod. Each pod's WebSocket runner sends a 1 MiB Output (the
    message limit is 4 MiB), and once its browser has it, a small Output:
    every browser gets both, intact. Paced, so no browser is ever behind."""
    relay = start_relay("--loops", "2")
    rng = random.Random(40)

    async def one_pod(i, pod, home, ch):
        runner = await open_runner(relay, pod, name=f"runner-{i}")
        browser = GrpcPeer(relay_stubs, ch, browser_token(pod), f"browser-{i}(pod home loop {home})", "browser")
        await exchange(runner, [browser], [], ks=[], marker=f"marker-{i}".encode())
        big, after = frame(OUTPUT, rng.randbytes(MiB)), frame(OUTPUT, f"after-{i}".encode())
        for e in (big, after):
            await runner.send(e)
            await browser.expect_message(e, timeout=10)
        await runner.close()

    async def main():
        ch = insecure_channel(relay)
        pods = pods_on_loops(2, per_loop=2)
        results = await asyncio.gather(*(one_pod(i, pod, home, ch) for i, (pod, home) in enumerate(pods)),
                                       return_exceptions=True)
        await ch.close()
        failed = [f"{r}" for r in results if isinstance(r, BaseException)]
        assert not failed, f"{len(failed)} of {len(pods)} browsers: " + " | ".join(failed)

    run(main(), timeout=45)


@pytest.mark.parametrize("browser_kind", ["websocket", "grpc"])
def test_one_large_frame_in_progress_does_not_lag_a_reading_browser(start_relay, relay_stubs, browser_kind):
    """docs/protocol.md §8: a frame is accepted while fewer than
    --outbound-queue-bytes wait *behind the entry being written*; "a peer
    that reads promptly is not failed by one large frame in progress".
    One loop, a 64 KiB bound, an idle extended browser: the runner's
    100 KB Output and a 5-byte one arrive in one TCP write; the browser must
    get both, with no Lagged. (The WebSocket browser is the same check on
    the path the bound was written for.)"""
    relay = start_relay("--loops", "1", "--outbound-queue-bytes", "65536")
    rng = random.Random(41)

    async def main():
        pod = new_pod()
        runner = open_raw_runner(relay, pod)
        ch = insecure_channel(relay)
        if browser_kind == "grpc":
            browser = GrpcPeer(relay_stubs, ch, browser_token(pod), "grpc-browser", "browser", ext=True)
        else:
            browser = await open_browser(relay, pod, ext=True, name="ws-browser")
        # Attached (Position ends the attach), then live: the marker.
        assert parse_position(await browser.expect(POSITION, timeout=10))[1] == 0
        runner.send_binary(frame(OUTPUT, b"marker"))
        await browser.expect(OUTPUT, b"marker", timeout=10)
        big, after = frame(OUTPUT, rng.randbytes(100_000)), frame(OUTPUT, b"after")
        runner.sock.sendall(ws_client_frame(big) + ws_client_frame(after))
        got = []
        try:
            while frame(OUTPUT, b"after") not in got:
                t, p = await browser.recv(timeout=5)
                got.append(frame(t, p))
        except AssertionError:
            pass
        assert got == [big, after], (
            f"{browser.name} got {[describe(m[0], m[1:]) for m in got]}, expected only "
            f"{[describe(m[0], m[1:]) for m in (big, after)]}")
        runner.close()
        await browser.close()
        await ch.close()

    run(main(), timeout=30)


# ------------------------------------------------------------------ 8: TLS


def test_tls_h2_by_alpn(start_relay, relay_stubs, tls_certs):
    """With --tls: the relay selects h2 by ALPN; a runner and a browser on
    grpc secure channels trusting the test CA exchange frames both ways;
    /stats counts the connections as h2 (none as h2c). One loop: TLS is
    the subject here (frames up to 1 MiB across loops have their own test)."""
    relay = start_relay(*tls_certs.relay_args(), "--loops", "1", tls=tls_certs.client_context())
    outputs = runner_stream(seed=20, n_small=200)

    async def main():
        raw = await RawH2.connect(relay, tls_certs.client_context(alpn=["h2", "http/1.1"]))
        assert raw.alpn == "h2", f"ALPN selected {raw.alpn!r}"
        refused = await raw.start_call(ATTACH, [])
        await raw.wait_for(lambda: refused.ended, timeout=10, what="the refusal")
        assert refused.trailers_only and refused.grpc_status == "16", refused.describe()
        await raw.close()

        pod = new_pod()
        chans = [secure_channel(relay, tls_certs), secure_channel(relay, tls_certs)]
        runner = GrpcPeer(relay_stubs, chans[0], runner_token(pod), "tls-runner", "runner")
        browser = GrpcPeer(relay_stubs, chans[1], browser_token(pod), "tls-browser", "browser")
        await exchange(runner, [browser], outputs, ks=[0])
        s = await wait_stats(relay, lambda s: s["transports"]["streams"]["grpc"] == 2, timeout=10, what="2 gRPC streams")
        assert s["transports"]["connections_total"]["h2"] >= 3, s["transports"]
        assert s["transports"]["connections_total"]["h2c"] == 0, s["transports"]
        await expect_ok_end(browser, allowed=())
        await expect_ok_end(runner)
        for c in chans:
            await c.close()

    run(main(), timeout=45)


def test_tls_runner_subject_permission_denied(start_relay, relay_stubs, tls_certs):
    """mTLS with --tls-runner-subject '/CN=runner-*/O=mesh': a runner call
    over a connection whose certificate is /CN=viewer-1 ends
    PERMISSION_DENIED; with /CN=runner-1 it is accepted and exchanges frames
    with a browser (whose /CN=viewer-1 is fine for a browser). One loop, as above."""
    certs = tls_certs
    relay = start_relay(*certs.relay_args(client_ca=certs.ca.cert), "--tls-runner-subject", "/CN=runner-*/O=mesh",
                        "--loops", "1", tls=certs.client_context(certs.viewer))

    async def main():
        pod = new_pod()
        viewer_ch = secure_channel(relay, certs, client=certs.viewer)
        runner_ch = secure_channel(relay, certs, client=certs.runner)
        wrong = GrpcPeer(relay_stubs, viewer_ch, runner_token(pod), "runner(viewer cert)", "runner")
        details = await expect_refused(wrong, grpc.StatusCode.PERMISSION_DENIED)
        assert details, "PERMISSION_DENIED without a message"
        runner = GrpcPeer(relay_stubs, runner_ch, runner_token(pod), "runner(runner cert)", "runner")
        browser = GrpcPeer(relay_stubs, viewer_ch, browser_token(pod), "browser(viewer cert)", "browser")
        await exchange(runner, [browser], runner_stream(seed=30, n_small=50), ks=[0])
        await viewer_ch.close()
        await runner_ch.close()

    run(main(), timeout=45)


# ---------------------------------------------------------------- 9: drain


def test_drain_ends_calls_unavailable(start_relay, relay_stubs):
    """SIGTERM with a 10 s grace: the open runner and browser calls end
    UNAVAILABLE; during the drain a new call (new channel) is UNAVAILABLE,
    and on the wire it is a trailers-only grpc-status 14."""
    relay = start_relay("--shutdown-grace", "10s", env={"SHUTDOWN_GRACE": "10s"})

    async def main():
        pod = new_pod()
        ch = insecure_channel(relay)
        runner = GrpcPeer(relay_stubs, ch, runner_token(pod), "runner", "runner")
        browser = GrpcPeer(relay_stubs, ch, browser_token(pod), "browser", "browser")
        await exchange(runner, [browser], [frame(OUTPUT, b"before the drain")], ks=[0])

        relay.proc.send_signal(signal.SIGTERM)
        for p in (browser, runner):
            end, frames = await p.finish(timeout=8)
            assert end.code == grpc.StatusCode.UNAVAILABLE, f"{p.name}: {end}"
            allowed = (RESYNC,) if p.role == "runner" else (RUNNER_DISCONNECTED,)
            assert all(t in allowed for t, _ in frames), f"{p.name}: {[describe(*f) for f in frames]}"
        assert relay.proc.poll() is None, "the relay exited before its grace period"

        ch2 = insecure_channel(relay)
        late = GrpcPeer(relay_stubs, ch2, browser_token(new_pod()), "late-browser", "browser")
        await expect_refused(late, grpc.StatusCode.UNAVAILABLE)

        raw = await RawH2.connect(relay)
        call = await raw.start_call(ATTACH, [("authorization", f"Bearer {browser_token(new_pod())}")])
        await raw.wait_for(lambda: call.ended, timeout=5, what="the answer during the drain")
        assert call.trailers_only and call.grpc_status == "14", call.describe()
        assert relay.proc.poll() is None, "the relay exited before its grace period"
        await raw.close()
        await ch.close()
        await ch2.close()

    try:
        run(main(), timeout=30)
    finally:
        if relay.proc.poll() is None:
            relay.proc.kill()
            relay.proc.wait(timeout=5)


# ------------------------------------------------------- extended clients


def test_extended_browser_position_and_resume(start_relay, relay_stubs):
    """`x-relay-ext: 1`: a browser gets the ring (six Outputs), then
    Position(epoch, 6); resuming with x-relay-epoch/x-relay-seq = 6 after two
    more gets exactly those two, then Position(epoch, 8), no Snapshot and no Gap. A plain gRPC
    browser never gets an extension frame (checked on every receive)."""
    relay = start_relay()
    outs = [frame(OUTPUT, f"out-{i}".encode()) for i in range(1, 8)]

    async def main():
        pod = new_pod()
        ch = insecure_channel(relay)
        runner = GrpcPeer(relay_stubs, ch, runner_token(pod), "runner", "runner")
        plain = GrpcPeer(relay_stubs, ch, browser_token(pod, user_id=1000), "plain", "browser")
        await exchange(runner, [plain], outs[:5], ks=[], marker=b"out-0")
        # The ring now holds out-0 (the marker) ... out-5: seq 1 ... 6.
        ext = GrpcPeer(relay_stubs, ch, browser_token(pod, user_id=1001), "ext", "browser", ext=True)
        for e in [frame(OUTPUT, b"out-0")] + outs[:5]:
            await ext.expect_message(e, timeout=10)
        epoch, seq = parse_position(await ext.expect(POSITION, timeout=10))
        assert seq == 6, (epoch, seq)
        for e in outs[5:]:
            await runner.send(e)
        for e in outs[5:]:
            await ext.expect_message(e, timeout=10)
            await plain.expect_message(e, timeout=10)

        resumed = GrpcPeer(relay_stubs, ch, browser_token(pod, user_id=1002), "resumed", "browser",
                           ext=True, epoch=epoch, seq=6)
        for e in outs[5:]:
            await resumed.expect_message(e, timeout=10)
        assert parse_position(await resumed.expect(POSITION, timeout=10)) == (epoch, 8)
        for p in (resumed, ext, plain):
            await p.half_close()
            end, frames = await p.finish(timeout=10)
            assert end.code == grpc.StatusCode.OK, f"{p.name}: {end}"
        await runner.close()
        await ch.close()

    run(main(), timeout=30)
