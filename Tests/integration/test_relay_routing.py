"""Routing between a runner and its browsers (docs/protocol.md §5 Frames, §6 Pod
lifecycle; B: Paths, Transport/Bearer)."""

import asyncio
import json
import random
import struct

import pytest

from websockets.exceptions import ConnectionClosed

from conftest import over_transport
from relay_client import (
    ACP_COMMAND, ACP_EVENT, ACP_SNAPSHOT, CONTROL, INPUT, OUTPUT, PING, PONG, RESIZE, RESYNC,
    Collector, Pacer, control, describe, frame, new_pod, open_browser, open_runner, resize, run,
    snapshot,
)

N_OUTPUT = 2000
N_INPUT = 100


def output_stream(seed: int = 1) -> list[bytes]:
    """2,000 runner frames: Output of many sizes (1 B ... 64 KiB payloads),
    with Control, AcpEvent, Snapshot, AcpSnapshot, app-level Ping/Pong and an
    unknown type mixed in (all must reach every browser, in order)."""
    rng = random.Random(seed)
    sizes = [1, 2, 7, 100, 1000, 4095, 4096, 16384, 65535]
    out = []
    for i in range(N_OUTPUT):
        if i % 50 == 49:
            payload = rng.randbytes(65536)  # 64 KiB
            out.append(frame(OUTPUT, payload))
        elif i % 97 == 5:
            out.append(control({"type": "status", "i": i}))
        elif i % 131 == 7:
            out.append(frame(ACP_EVENT, json.dumps({"event": "tool_call", "i": i}).encode()))
        elif i == 1000:
            out.append(snapshot(f"mid-{i}"))
        elif i == 1001:
            out.append(frame(ACP_SNAPSHOT, json.dumps({"session": i}).encode()))
        elif i == 1500:
            out.append(frame(PING))
        elif i == 1501:
            out.append(frame(PONG))
        elif i == 1502:
            out.append(frame(0x1F, b"unknown runner type"))
        else:
            out.append(frame(OUTPUT, rng.randbytes(rng.choice(sizes))))
    return out


def input_stream(k: int) -> list[bytes]:
    """One browser's frames to the runner; every payload names the browser
    (Resize by its distinct dimensions)."""
    rng = random.Random(100 + k)
    frames = []
    for j in range(N_INPUT):
        if j == 50:
            frames.append(resize(*RESIZES[k]))
        elif j == 75:
            frames.append(frame(ACP_COMMAND, json.dumps({"browser": k, "cmd": "prompt", "j": j}).encode()))
        else:
            size = 65536 if j % 30 == 29 else rng.choice([1, 3, 64, 700])
            frames.append(frame(INPUT, f"b{k}:{j}:".encode() + rng.randbytes(size)))
    return frames


RESIZES = {0: (80, 24), 1: (65535, 1), 2: (0x0102, 0x0304)}


def sender_of(msg: bytes) -> int:
    t = msg[0]
    if t == RESIZE:
        dims = struct.unpack(">HH", msg[1:])
        for k, d in RESIZES.items():
            if d == dims:
                return k
        raise AssertionError(f"runner got a Resize nobody sent: {dims}")
    if t == ACP_COMMAND:
        return json.loads(msg[1:])["browser"]
    if t == INPUT:
        return int(msg[1:].split(b":", 1)[0][1:])
    raise AssertionError(f"unexpected frame at the runner: {describe(t, msg[1:])}")


@pytest.fixture(params=["ws", "wss"])
def start_relay_ws_or_wss(request, start_relay):
    return over_transport(request, start_relay)


def test_runner_and_three_browsers_exchange_frames_exactly(start_relay_ws_or_wss):
    """2,000 runner frames (Output up to 64 KiB, Control, AcpEvent, Snapshot,
    AcpSnapshot, Ping/Pong, an unknown type) reach 3 browsers byte-exact and in
    order; 100 frames from each browser (Input up to 64 KiB, a Resize, an
    AcpCommand) reach the runner byte-exact and in per-browser order. The runner
    and one browser use the unstripped /relay/... paths, one browser sends its
    token as Authorization: Bearer. Over ws:// and wss://."""
    relay = start_relay_ws_or_wss()
    outputs = output_stream()
    inputs = {k: input_stream(k) for k in range(3)}

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod, prefixed=True)
        browsers = [
            await open_browser(relay, pod, name="b0", user_id=1000),
            await open_browser(relay, pod, name="b1(/relay path)", user_id=1001, prefixed=True),
            await open_browser(relay, pod, name="b2(bearer)", user_id=1002, bearer=True),
        ]
        # Every browser is attached once it has seen this frame (live or replayed).
        await runner.send(frame(OUTPUT, b"sync-marker"))
        for b in browsers:
            skipped, _ = await b.recv_until(lambda t, p: t == OUTPUT and p == b"sync-marker", what="sync marker")
            assert not skipped, f"{b.name}: frames before the first runner frame: {[describe(*f) for f in skipped]}"

        # Window below the relay's default 1 MiB outbound queue (see Pacer).
        pacer = Pacer(window=512 * 1024)
        collectors = [Collector(b, outputs.__getitem__, len(outputs), pacer) for b in browsers]
        send_times = []

        async def push():
            for msg in outputs:
                await pacer.room_for(len(msg))
                t0 = asyncio.get_running_loop().time()
                await runner.send(msg)
                send_times.append(asyncio.get_running_loop().time() - t0)

        async def type_into(k):
            for msg in inputs[k]:
                await browsers[k].send(msg)

        async def runner_reads():
            got = {0: [], 1: [], 2: []}
            total = sum(len(v) for v in inputs.values())
            n = 0
            while n < total:
                t, p = await runner.recv(timeout=10)
                if t == RESYNC and not p:
                    continue  # the relay asks for a Snapshot when a browser joins and none is cached
                msg = frame(t, p)
                k = sender_of(msg)
                got[k].append(msg)
                n += 1
            return got

        results = await asyncio.gather(
            push(), *(c.task for c in collectors), *(type_into(k) for k in range(3)), runner_reads()
        )
        got = results[-1]
        for k in range(3):
            assert len(got[k]) == len(inputs[k])
            for j, (a, b) in enumerate(zip(got[k], inputs[k])):
                assert a == b, f"browser {k} frame {j}: runner got {describe(a[0], a[1:])}, sent {describe(b[0], b[1:])}"
        assert max(send_times) < 2.0, f"a runner send took {max(send_times):.2f} s"
        for b in browsers:
            await b.close()
        await runner.close()

    run(main(), timeout=120)


def test_second_runner_replaces_first(start_relay):
    """A second runner for the pod replaces the first: the first is closed with
    1000 "replaced by new connection"; browsers then get the new runner's frames
    and their input goes to the new runner."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        first = await open_runner(relay, pod, name="runner-1")
        browser = await open_browser(relay, pod)
        await first.send(frame(OUTPUT, b"from-1"))
        await browser.expect(OUTPUT, b"from-1")

        second = await open_runner(relay, pod, name="runner-2")
        code, reason, _ = await first.expect_closed(timeout=5)
        assert (code, reason) == (1000, "replaced by new connection"), (code, reason)

        await second.send(frame(OUTPUT, b"from-2"))
        # 0x08/0x09 around a replacement are not specified; anything else is.
        skipped, _ = await browser.recv_until(lambda t, p: t == OUTPUT and p == b"from-2", what="runner-2 output")
        assert all(t in (0x08, 0x09) for t, _ in skipped), [describe(*f) for f in skipped]

        await browser.send(frame(INPUT, b"to-2"))
        skipped, (_, typed) = await second.recv_until(lambda t, p: t == INPUT, what="browser input")
        assert all(t == RESYNC for t, _ in skipped), [describe(*f) for f in skipped]
        assert typed == b"to-2"

    run(main(), timeout=30)


def test_pods_are_isolated(start_relay):
    """Frames stay within their pod_key."""
    relay = start_relay()

    async def main():
        pod_a, pod_b = new_pod(), new_pod()
        ra = await open_runner(relay, pod_a, name="runner-a")
        rb = await open_runner(relay, pod_b, name="runner-b")
        ba = await open_browser(relay, pod_a, name="browser-a")
        bb = await open_browser(relay, pod_b, name="browser-b")
        await ra.send(frame(OUTPUT, b"for-a"))
        await rb.send(frame(OUTPUT, b"for-b"))
        await ba.expect(OUTPUT, b"for-a")
        await bb.expect(OUTPUT, b"for-b")
        await ba.send(frame(INPUT, b"from-a"))
        await bb.send(frame(INPUT, b"from-b"))
        _, (t, p) = await ra.recv_until(lambda t, p: t == INPUT)
        assert p == b"from-a"
        _, (t, p) = await rb.recv_until(lambda t, p: t == INPUT)
        assert p == b"from-b"

    run(main(), timeout=30)


def test_oversized_message_closed_1009(start_relay):
    """A message over the 4 MiB limit closes the sender with 1009; 4 MiB itself
    passes (the outbound queue is raised to 16 MiB so that a single 4 MiB frame
    is not a lag)."""
    relay = start_relay("--outbound-queue-bytes", str(16 << 20))

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(relay, pod, max_queue=16)
        big = frame(OUTPUT, bytes(4 * 1024 * 1024 - 1))  # exactly 4 MiB with the type byte
        await runner.send(big)
        _, (t, p) = await browser.recv_until(lambda t, p: t == OUTPUT, timeout=10, what="4 MiB output")
        assert len(p) == len(big) - 1
        try:
            await runner.send(frame(OUTPUT, bytes(4 * 1024 * 1024)))  # one byte too many
        except ConnectionClosed as e:
            # The relay may refuse on the frame header, before the payload is in.
            code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, "no close frame received")
        else:
            code, reason, _ = await runner.expect_closed(timeout=10)
        assert code == 1009, (code, reason)

    run(main(), timeout=30)
