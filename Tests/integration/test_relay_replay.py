"""Replay ring, instant attach, resume, presence (docs/protocol.md §7 Replay,
instant attach and resume)."""

import json

from relay_client import (
    ACP_EVENT, ACP_SNAPSHOT, CONTROL, GAP, LAGGED, OUTPUT, POSITION, RESYNC, SNAPSHOT, control,
    describe, frame, new_pod, open_browser, open_runner, parse_gap, parse_position, run, snapshot,
)


def out(i: int, size: int = 0) -> bytes:
    return frame(OUTPUT, f"o{i}|".encode() + b"x" * size)


async def expect_frames(peer, expected: list[bytes], what: str) -> None:
    for k, msg in enumerate(expected):
        t, p = await peer.recv()
        assert (t, p) == (msg[0], msg[1:]), (
            f"{peer.name}: {what}: frame {k}: expected {describe(msg[0], msg[1:])}, got {describe(t, p)}")


# ------------------------------------------------------------ instant attach


async def pod_with_snapshot_and_ext_browser(relay):
    """A runner that has sent a Snapshot, and an extended browser that got
    it and the Position after it: (pod, runner, snapshot, browser, epoch, seq)."""
    pod = new_pod()
    runner = await open_runner(relay, pod)
    snap = snapshot("s")
    await runner.send(snap)
    await runner.sync()
    b = await open_browser(relay, pod, ext=True, name="first", user_id=5)
    await expect_frames(b, [snap], "join")
    epoch, seq0 = parse_position(await b.expect(POSITION))
    return pod, runner, snap, b, epoch, seq0


def test_instant_attach_snapshot_and_tail(start_relay):
    """Runner sends Output, Snapshot, Output, Control, AcpSnapshot, AcpEvent,
    Output before any browser. A browser joining later gets, with the runner
    doing nothing: Snapshot, AcpSnapshot, then the replayable frames after the
    Snapshot (not the one before it); ext also gets Position(seq=5) (five
    replayable frames so far). Then live frames follow with nothing in
    between."""
    relay = start_relay()
    o1 = out(1)
    snap = snapshot("attach")
    o2 = out(2)
    c3 = control({"type": "status", "n": 3})
    acp_snap = frame(ACP_SNAPSHOT, json.dumps({"session": "s"}).encode())
    e4 = frame(ACP_EVENT, json.dumps({"event": 4}).encode())
    o5 = out(5)

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        for msg in (o1, snap, o2, c3, acp_snap, e4, o5):
            await runner.send(msg)
        await runner.sync()  # the relay has read (and stored) all of it

        plain = await open_browser(relay, pod, name="plain", user_id=1)
        await expect_frames(plain, [snap, acp_snap, o2, c3, e4, o5], "plain join")
        ext = await open_browser(relay, pod, name="ext", user_id=2, ext=True)
        await expect_frames(ext, [snap, acp_snap, o2, c3, e4, o5], "ext join")
        epoch, seq = parse_position(await ext.expect(POSITION))
        assert seq == 5, f"Position seq {seq}, expected 5 (o1, o2, c3, e4, o5)"

        o6 = out(6)
        await runner.send(o6)
        await expect_frames(plain, [o6], "live")
        await expect_frames(ext, [o6], "live")

        # A Snapshot was cached: the joins did not ask the runner for one.
        await runner.send(frame(OUTPUT, b"probe"))
        await plain.expect(OUTPUT, b"probe")
        await plain.send(frame(0x7E, b"end"))
        _, _ = await runner.recv_until(lambda t, p: t == 0x7E, what="end marker")
        assert not [f for f in runner.log if f[0] == RESYNC], (
            f"the relay sent the runner Resync although a Snapshot was cached: {runner.tail_log()}")

    run(main(), timeout=30)


def test_instant_attach_without_snapshot_asks_runner(start_relay):
    """No Snapshot cached: a joining browser gets every replayable frame in the
    ring, and the relay sends 0x0A Resync to the runner."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        frames = [out(1), control({"n": 2}), out(3)]
        for msg in frames:
            await runner.send(msg)
        await runner.sync()
        browser = await open_browser(relay, pod)
        await expect_frames(browser, frames, "join without snapshot")
        assert await runner.expect(RESYNC, timeout=5) == b""
        # The runner answers with a Snapshot: it reaches the browser.
        snap = snapshot("answer")
        await runner.send(snap)
        await expect_frames(browser, [snap], "snapshot answer")

    run(main(), timeout=30)


# -------------------------------------------------------------------- resume


def test_resume_gets_exactly_the_missing_frames(start_relay):
    """An ext browser reads Position and 40 of 100 frames, drops (no closing
    handshake), the runner sends 50 more, the browser returns with
    ?epoch=E&seq=N: it gets exactly frames 41..150 (no Snapshot, no Gap, no
    duplicate), then Position(E, 150), then live frame 151."""
    relay = start_relay()

    async def main():
        pod, runner, snap, b, epoch, seq0 = await pod_with_snapshot_and_ext_browser(relay)
        assert seq0 == 0, f"Position after a join with no replayable frame: seq {seq0}, expected 0"

        for i in range(1, 101):
            await runner.send(out(i, 100))
        await expect_frames(b, [out(i, 100) for i in range(1, 41)], "first 40")
        b.abort()

        for i in range(101, 151):
            await runner.send(out(i, 100))
        await runner.sync()

        back = await open_browser(relay, pod, ext=True, epoch=epoch, seq=seq0 + 40, name="resumed", user_id=5)
        await expect_frames(back, [out(i, 100) for i in range(41, 151)], "resume")
        e, s = parse_position(await back.expect(POSITION))
        assert (e, s) == (epoch, seq0 + 150), ((e, s), (epoch, seq0 + 150))
        await runner.send(out(151))
        await expect_frames(back, [out(151)], "live after resume")
        assert not [f for f in back.log if f[0] in (SNAPSHOT, GAP, LAGGED)], back.tail_log(20)

    run(main(), timeout=30)


def test_resume_with_wrong_epoch_gets_gap_then_snapshot(start_relay):
    """Resuming with another epoch: 0x21 Gap first, then the Snapshot, the
    tail after it, Position (current epoch)."""
    relay = start_relay()

    async def main():
        pod, runner, snap, b, epoch, seq0 = await pod_with_snapshot_and_ext_browser(relay)
        for i in range(1, 21):
            await runner.send(out(i))
        await expect_frames(b, [out(i) for i in range(1, 21)], "stream")
        await b.close()

        wrong = (epoch + 1) % 2**32
        back = await open_browser(relay, pod, ext=True, epoch=wrong, seq=seq0 + 10, name="wrong-epoch", user_id=5)
        t, p = await back.recv()
        assert t == GAP, f"expected 0x21 Gap first, got {describe(t, p)}"
        parse_gap(p)  # 20 bytes; from/to are not meaningful across epochs
        await expect_frames(back, [snap] + [out(i) for i in range(1, 21)], "gap fallback")
        e, s = parse_position(await back.expect(POSITION))
        assert (e, s) == (epoch, seq0 + 20), ((e, s), (epoch, seq0 + 20))

    run(main(), timeout=30)


def test_resume_older_than_ring_gets_gap(start_relay):
    """--replay-ring-bytes 16384 and 200 Output frames of ~1 KiB: resuming from
    seq 1 (long overwritten) gets Gap, Snapshot, a contiguous tail ending at the
    last frame, Position."""
    relay = start_relay("--replay-ring-bytes", "16384")

    async def main():
        pod, runner, snap, b, epoch, seq0 = await pod_with_snapshot_and_ext_browser(relay)
        for i in range(1, 201):
            await runner.send(out(i, 1000))
        await expect_frames(b, [out(i, 1000) for i in range(1, 201)], "stream")
        await b.close()

        back = await open_browser(relay, pod, ext=True, epoch=epoch, seq=seq0 + 1, name="too-old", user_id=5)
        t, p = await back.recv()
        assert t == GAP, f"expected 0x21 Gap first, got {describe(t, p)}"
        await back.expect_message(snap)
        tail = []
        while True:
            t, p = await back.recv()
            if t == POSITION:
                break
            assert t == OUTPUT, describe(t, p)
            tail.append(int(p.split(b"|")[0][1:]))
        assert tail and tail == list(range(tail[0], 201)), f"tail {tail}"
        assert len(tail) * 1000 <= 16384 + 2000, f"{len(tail)} frames replayed from a 16 KiB ring"
        assert parse_position(p) == (epoch, seq0 + 200)

    run(main(), timeout=30)


# ------------------------------------------------------------------ presence


def test_presence_counts_browsers_and_writers(start_relay):
    """Ext browsers get 0x23 Presence {"browsers","writers"} as browsers come
    and go (read-only viewers are browsers, not writers)."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        await open_runner(relay, pod)
        watcher = await open_browser(relay, pod, ext=True, name="watcher", user_id=1)
        await watcher.expect(POSITION)

        async def next_presence(want):
            seen = []
            while True:
                t, p = await watcher.recv(skip_presence=False)
                if t == 0x23:
                    obj = json.loads(p)
                    seen.append(obj)
                    if obj == want:
                        return
                    continue
                raise AssertionError(f"unexpected {describe(t, p)} while waiting for presence {want}; saw {seen}")

        viewer = await open_browser(relay, pod, scope="read", name="viewer", user_id=2)
        await next_presence({"browsers": 2, "writers": 1})
        writer = await open_browser(relay, pod, name="writer", user_id=3)
        await next_presence({"browsers": 3, "writers": 2})
        await viewer.close()
        await next_presence({"browsers": 2, "writers": 2})
        await writer.close()
        await next_presence({"browsers": 1, "writers": 1})

    run(main(), timeout=30)
