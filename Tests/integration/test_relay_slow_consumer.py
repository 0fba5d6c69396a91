"""A browser that does not read never slows the runner or the other browsers
(docs/protocol.md §8, Slow consumers). Every test runs over ws:// and over
wss:// (TLS: the raw-socket browser is then a TLS socket)."""

import asyncio
import random
import socket
import time
import urllib.request

import pytest

from conftest import over_transport
from relay_client import (
    LAGGED, OUTPUT, POSITION, PRESENCE, SNAPSHOT, Collector, Pacer, PeerClosed, describe, frame,
    new_pod, open_browser, open_raw_browser, open_runner, parse_lagged, parse_position, run,
    snapshot, vm_rss_bytes,
)

QUEUE_BYTES = 256 * 1024
FRAME_PAYLOAD = 16 * 1024
TOTAL_BYTES = 50 * 1024 * 1024
N_FRAMES = TOTAL_BYTES // FRAME_PAYLOAD  # 3200
RSS_LIMIT = 300 * 1024 * 1024

_BLOCK = random.Random(7).randbytes(1 << 17)


@pytest.fixture(params=["ws", "wss"])
def start_relay(request, start_relay):
    return over_transport(request, start_relay)


def payload(i: int) -> bytes:
    """Frame i of the push: its index, then 16 KiB - 4 of pseudo-random bytes."""
    off = (i * 7919) % (len(_BLOCK) - FRAME_PAYLOAD)
    return i.to_bytes(4, "big") + _BLOCK[off:off + FRAME_PAYLOAD - 4]


def output(i: int) -> bytes:
    return frame(OUTPUT, payload(i))


def index_of(msg_payload: bytes) -> int:
    i = int.from_bytes(msg_payload[:4], "big")
    assert msg_payload == payload(i), f"Output frame {i} is corrupted ({len(msg_payload)} B)"
    return i


class RssSampler:
    def __init__(self, pid: int):
        self.pid = pid
        self.max = 0
        self.samples = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        while True:
            self.max = max(self.max, vm_rss_bytes(self.pid))
            self.samples += 1
            await asyncio.sleep(0.02)

    def stop(self):
        self.task.cancel()


def read_raw_frames(raw, stop, timeout: float):
    """Relay frames (type, payload) from the raw socket until stop(frames) is
    true; relay pings are answered from now on (the browser reads again)."""
    frames = []
    deadline = time.monotonic() + timeout
    while not stop(frames):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"slow browser: stop condition not met within {timeout} s; "
                f"{len(frames)} frames, last: {[describe(*f) for f in frames[-6:]]}")
        try:
            m = raw.recv_message(remaining)
        except TimeoutError:
            continue  # reported above with what was read
        except PeerClosed as e:
            raise AssertionError(f"slow browser: connection ended ({e}) after {len(frames)} frames; "
                                 f"last: {[describe(*f) for f in frames[-6:]]}") from None
        if m.opcode == 0x9:
            raw.send_frame(0xA, m.payload)
            continue
        if m.opcode == 0x8:
            raise AssertionError(f"slow browser: closed by the relay with {m.close_code} {m.close_reason!r} "
                                 f"after {len(frames)} frames; last: {[describe(*f) for f in frames[-6:]]}")
        assert m.opcode == 0x2, f"non-binary message opcode {m.opcode}"
        frames.append((m.payload[0], m.payload[1:]))
    return frames


@pytest.mark.parametrize("ext", [False, True], ids=["plain", "ext"])
def test_slow_browser_does_not_slow_others(start_relay, ext, capsys):
    """Outbound queue 256 KiB. A raw-socket browser (SO_RCVBUF 4 KiB) reads
    its join frames, then stops reading. Two normal browsers read. The runner
    pushes 50 MiB in 16 KiB Output frames:
    - both normal browsers get every frame, byte-exact, in order;
    - the push completes while the slow browser reads nothing (a relay that
      let it hold the runner back would stall the fast browsers, which the
      Pacer reports after a generous 10 s without progress);
    - relay VmRSS stays under 300 MB (sampled every 20 ms);
    then the slow browser reads again: after what it had already been sent, it
    gets (ext: 0x22 Lagged, dropped > 0, immediately before) the cached
    Snapshot, then a contiguous tail of the push ending with its last frame,
    (ext: Position = seq of that frame), and is live again.

    The runner is kept at most 192 KiB ahead of the normal browsers (Pacer):
    they are Python clients sharing one core with the runner, and the relay is
    entitled to drop frames for any browser that falls 256 KiB behind."""
    relay = start_relay("--outbound-queue-bytes", str(QUEUE_BYTES), "--ping-interval", "120s")
    snap = snapshot("before-push")

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        await runner.send(snap)
        await runner.sync()

        slow = await asyncio.to_thread(open_raw_browser, relay, pod, ext=ext, rcvbuf=4096, user_id=66)
        want_join = 2 if ext else 1
        joined = await asyncio.to_thread(
            read_raw_frames, slow,
            lambda fs: len([f for f in fs if f[0] != PRESENCE]) >= want_join, 5)
        joined = [f for f in joined if f[0] != PRESENCE]
        assert frame(*joined[0]) == snap, f"slow browser join: {[describe(*f) for f in joined]}"
        epoch = seq0 = None
        if ext:
            assert joined[1][0] == POSITION, describe(*joined[1])
            epoch, seq0 = parse_position(joined[1][1])
        # From here on the slow browser reads nothing.

        fast = [await open_browser(relay, pod, name=f"fast{i}", user_id=70 + i) for i in range(2)]
        for b in fast:
            await b.expect_message(snap)
        await runner.send(frame(OUTPUT, b"marker"))  # replayable: seq0 + 1
        for b in fast:
            await b.expect(OUTPUT, b"marker")

        rss = RssSampler(relay.proc.pid)
        pacer = Pacer(window=192 * 1024, stall_timeout=10)
        collectors = [Collector(b, output, N_FRAMES, pacer) for b in fast]
        send_times = []
        t_push = time.monotonic()

        async def push():
            for i in range(N_FRAMES):
                msg = output(i)
                await pacer.room_for(len(msg))
                t0 = time.monotonic()
                await runner.send(msg)
                send_times.append(time.monotonic() - t0)

        try:
            await asyncio.gather(push(), *(c.task for c in collectors))
        except BaseException:
            rss.stop()
            raise
        push_time = time.monotonic() - t_push
        assert rss.samples > 0
        assert rss.max < RSS_LIMIT, f"relay VmRSS reached {rss.max / 2**20:.0f} MiB during the push"

        # The slow browser reads again.
        last = N_FRAMES - 1

        def caught_up(frames):
            # the last pushed frame, after a Snapshot that follows the join part
            # (+ the Position after it, for ext)
            body = [f for f in frames if f[0] != PRESENCE]
            for k, (t, p) in enumerate(body):
                if t == OUTPUT and len(p) == FRAME_PAYLOAD and int.from_bytes(p[:4], "big") == last:
                    return not ext or any(t2 == POSITION for t2, _ in body[k + 1:])
            return False

        frames = await asyncio.to_thread(read_raw_frames, slow, caught_up, 60)
        frames = [f for f in frames if f[0] != PRESENCE]

        # What the relay had already handed to the kernel before the lag: the
        # marker, then push frames 0..k-1 in order.
        pos = 0
        assert frames[pos] == (OUTPUT, b"marker"), describe(*frames[pos])
        pos += 1
        expect_i = 0
        while pos < len(frames) and frames[pos][0] == OUTPUT:
            i = index_of(frames[pos][1])
            assert i == expect_i, f"before the lag: frame {i} where {expect_i} was due"
            expect_i += 1
            pos += 1
        assert expect_i < N_FRAMES, "the slow browser was never lagged (it got every frame of the push)"
        assert pos < len(frames), f"nothing after push frame {expect_i - 1}"
        if ext:
            assert frames[pos][0] == LAGGED, f"ext: expected 0x22 Lagged before the Snapshot, got {describe(*frames[pos])}"
            dropped = parse_lagged(frames[pos][1])
            assert dropped > 0, "Lagged with dropped_frames = 0"
            pos += 1
        assert pos < len(frames) and frame(*frames[pos]) == snap, f"expected the cached Snapshot after the lag, got {describe(*frames[pos])}"
        pos += 1
        tail = []
        while pos < len(frames) and frames[pos][0] == OUTPUT:
            tail.append(index_of(frames[pos][1]))
            pos += 1
        assert tail, "no tail after the Snapshot"
        assert tail == list(range(tail[0], N_FRAMES)), f"tail not contiguous: {tail[:5]}...{tail[-5:]}"
        if ext:
            assert pos < len(frames) and frames[pos][0] == POSITION, f"no Position after the tail: {[describe(*f) for f in frames[pos:pos + 3]]}"
            e, s = parse_position(frames[pos][1])
            # seq0 + 1 was the marker, push frame i is seq0 + 2 + i
            assert (e, s) == (epoch, seq0 + 1 + N_FRAMES), ((e, s), (epoch, seq0 + 1 + N_FRAMES))
            pos += 1
        with capsys.disabled():
            print(f"\nslow consumer ({'ext' if ext else 'plain'}): 50 MiB pushed in {push_time:.2f} s, "
                  f"slowest runner send {max(send_times) * 1000:.1f} ms, longest pacing wait "
                  f"{pacer.max_stall * 1000:.0f} ms, relay VmRSS max {rss.max / 2**20:.1f} MiB; slow browser got "
                  f"{expect_i} frames before the lag, then a {len(tail)}-frame tail"
                  + (f", Lagged dropped={dropped}" if ext else ""))
        assert pos == len(frames), f"unexpected frames after catching up: {[describe(*f) for f in frames[pos:pos + 5]]}"

        # Live again.
        await runner.send(frame(OUTPUT, b"live"))
        more = await asyncio.to_thread(read_raw_frames, slow, lambda fs: any(f[0] == OUTPUT for f in fs), 5)
        more = [f for f in more if f[0] != PRESENCE]
        assert more == [(OUTPUT, b"live")], [describe(*f) for f in more]
        for b in fast:
            await b.expect(OUTPUT, b"live")
        rss.stop()
        assert rss.max < RSS_LIMIT, f"relay VmRSS reached {rss.max / 2**20:.0f} MiB while the slow browser caught up"
        slow.close()

    run(main(), timeout=240)


def test_three_lags_close_with_4008(start_relay):
    """A browser that lags 3 times within 60 s is closed with 4008 "slow
    consumer". The ext raw browser stops reading while the runner pushes 8 MiB,
    then reads until it has caught up (Lagged ... Position); the third lag ends
    it. The runner's sends never block."""
    relay = start_relay("--outbound-queue-bytes", str(QUEUE_BYTES), "--ping-interval", "120s")
    burst = 8 * 1024 * 1024 // FRAME_PAYLOAD

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        await runner.send(snapshot("s"))
        await runner.sync()
        slow = await asyncio.to_thread(open_raw_browser, relay, pod, ext=True, rcvbuf=4096, user_id=9)
        await asyncio.to_thread(read_raw_frames, slow, lambda fs: any(f[0] == POSITION for f in fs), 5)

        lags = 0
        worst = 0.0
        for round_ in range(1, 4):
            for i in range(burst):
                t0 = time.monotonic()
                await runner.send(output(i))
                worst = max(worst, time.monotonic() - t0)
            await runner.sync()
            if round_ < 3:
                def caught_up(frames):
                    seen_lag = False
                    for t, _ in frames:
                        seen_lag |= t == LAGGED
                        if seen_lag and t == POSITION:
                            return True
                    return False
                frames = await asyncio.to_thread(read_raw_frames, slow, caught_up, 30)
                lags += sum(1 for t, _ in frames if t == LAGGED)
                assert lags == round_, f"round {round_}: {lags} Lagged frames so far"
        assert worst < 2.0, f"a runner send blocked for {worst:.2f} s"

        def until_close():
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    m = slow.recv_message(max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    break
                except PeerClosed:
                    return None, seen
                if m.opcode == 0x8:
                    return m, seen
                if m.opcode == 0x2:
                    seen.append(m.payload[0])
            raise AssertionError("the slow browser was not closed after its third lag")

        close, seen = await asyncio.to_thread(until_close)
        assert close is not None, f"connection dropped without a close frame (saw types {set(seen)})"
        assert (close.close_code, close.close_reason) == (4008, "slow consumer"), (close.close_code, close.close_reason)
        slow.close()

        # The pod carries on.
        b = await open_browser(relay, pod, name="after")
        await runner.send(frame(OUTPUT, b"ok"))
        await b.recv_until(lambda t, p: t == OUTPUT and p == b"ok", what="output after the slow one left")

    run(main(), timeout=180)


def test_big_frames_reach_reading_browsers(start_relay):
    """Default settings. The runner sends three 2 MiB Output frames (allowed:
    the message limit is 4 MiB), each followed by a small one. A browser that
    reads promptly gets every frame, no Lagged, and is not closed."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        b = await open_browser(relay, pod, ext=True, name="reader")
        await b.expect(POSITION)
        for k in range(3):
            big = frame(OUTPUT, bytes([k]) * (2 * 1024 * 1024))
            await runner.send(big)
            await runner.send(frame(OUTPUT, b"after%d" % k))
            await b.expect_message(big, timeout=10)
            await b.expect(OUTPUT, b"after%d" % k)
        await runner.send(frame(OUTPUT, b"final"))
        await b.expect(OUTPUT, b"final")

    run(main(), timeout=60)


def lags_total(relay) -> int:
    with relay.urlopen("/metrics") as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("relay_lags_total"):
                return int(float(line.split()[-1]))
    raise AssertionError("/metrics has no relay_lags_total")


def test_a_browser_that_half_closes_is_not_a_slow_consumer(start_relay):
    """A browser that stops reading, lets frames pile up in its queue (more
    than the kernel's socket buffers hold, less than the bound), then shuts
    down its sending side (TCP FIN, no Close frame): the relay writes what is
    queued and closes; frames the runner sends meanwhile are not offered to
    it, so no lag is counted (it is leaving, not slow)."""
    relay = start_relay("--outbound-queue-bytes", str(64 << 20))

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        reader = await open_browser(relay, pod, ext=True, name="reader")
        await reader.expect(POSITION)
        raw = await asyncio.to_thread(open_raw_browser, relay, pod, rcvbuf=4096, user_id=77)
        # 8 MiB: past what the kernel buffers towards the silent browser take.
        for i in range(512):
            await runner.send(frame(OUTPUT, payload(i)))
        for i in range(512):
            await reader.expect(OUTPUT, payload(i), timeout=10)
        raw.sock.shutdown(socket.SHUT_WR)
        await asyncio.sleep(0.3)
        for i in range(512, 532):
            await runner.send(frame(OUTPUT, payload(i)))
        for i in range(512, 532):
            await reader.expect(OUTPUT, payload(i), timeout=10)
        assert await asyncio.to_thread(lags_total, relay) == 0
        raw.sock.close()

    run(main(), timeout=60)
