"""Pod lifecycle: runner away and back, reconnect timeout, browser limit
(docs/protocol.md §6 Pod lifecycle; §8 input held while away)."""

import asyncio

from websockets.exceptions import InvalidStatus

from relay_client import (
    INPUT, OUTPUT, POSITION, RESYNC, RUNNER_DISCONNECTED, RUNNER_RECONNECTED, describe, frame,
    new_pod, open_browser, open_runner, run, wait_stats,
)


def test_runner_disconnect_and_return(start_relay):
    """Runner leaves: every browser gets 0x08 (empty). A browser that joins
    meanwhile gets 0x08 at once. Input typed meanwhile is held. Runner returns
    within the reconnect timeout: every browser gets 0x09, the held input
    reaches the new runner, and output flows again."""
    relay = start_relay("--runner-reconnect-timeout", "10s")

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod, name="runner-1")
        plain = await open_browser(relay, pod, name="plain", user_id=1)
        ext = await open_browser(relay, pod, name="ext", user_id=2, ext=True)
        await ext.expect(POSITION)
        await runner.send(frame(OUTPUT, b"before"))
        await plain.expect(OUTPUT, b"before")
        await ext.expect(OUTPUT, b"before")

        await runner.close()
        assert await plain.expect(RUNNER_DISCONNECTED) == b""
        assert await ext.expect(RUNNER_DISCONNECTED) == b""

        # Joins while the runner is away: 0x08 at once (replayed frames may come around it).
        late = await open_browser(relay, pod, name="late", user_id=3)
        skipped, (_, p) = await late.recv_until(lambda t, p: t == RUNNER_DISCONNECTED, timeout=2, what="0x08 at join")
        assert p == b""
        assert all(t == OUTPUT for t, _ in skipped), [describe(*f) for f in skipped]

        await plain.send(frame(INPUT, b"typed while away 1"))
        await ext.send(frame(INPUT, b"typed while away 2"))
        await plain.sync()
        await ext.sync()

        runner2 = await open_runner(relay, pod, name="runner-2")
        for b in (plain, ext):
            await b.expect(RUNNER_RECONNECTED)
        skipped, _ = await late.recv_until(lambda t, p: t == RUNNER_RECONNECTED, what="0x09")
        assert all(t == OUTPUT for t, _ in skipped), [describe(*f) for f in skipped]

        held = []
        while len(held) < 2:
            t, p = await runner2.recv(timeout=5)
            if t == RESYNC:
                continue
            assert t == INPUT, describe(t, p)
            held.append(p)
        assert sorted(held) == [b"typed while away 1", b"typed while away 2"], held

        await runner2.send(frame(OUTPUT, b"after"))
        for b in (plain, ext, late):
            await b.expect(OUTPUT, b"after")
        await plain.send(frame(INPUT, b"live again"))
        _, (_, p) = await runner2.recv_until(lambda t, p: t == INPUT, what="live input")
        assert p == b"live again"

    run(main(), timeout=40)


def test_browsers_closed_1001_when_runner_does_not_return(start_relay):
    """With --runner-reconnect-timeout 1s, browsers get 0x08 and then a close
    with code 1001 (that it comes only after the timeout is a unit test on the
    virtual clock: Tests/RelayNodeTests/LifecycleTimerTests.swift)."""
    relay = start_relay("--runner-reconnect-timeout", "1s")

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browsers = [await open_browser(relay, pod, name=f"b{i}", user_id=10 + i) for i in range(2)]
        await runner.send(frame(OUTPUT, b"hello"))
        for b in browsers:
            await b.expect(OUTPUT, b"hello")
        runner.abort()  # no closing handshake: a crashed runner
        for b in browsers:
            await b.expect(RUNNER_DISCONNECTED, timeout=5)
        for b in browsers:
            code, reason, frames = await b.expect_closed(timeout=10)
            assert code == 1001, f"{b.name}: close code {code} {reason!r} (want 1001); frames {frames}"
            assert not frames, f"{b.name}: frames after 0x08: {[describe(*f) for f in frames]}"

    run(main(), timeout=30)


def test_eleventh_browser_closed_1008(start_relay):
    """Ten browsers per pod (default): the 11th's upgrade succeeds and it is
    then closed with 1008 "max subscribers reached"; the ten keep working, and
    a place freed by one leaving can be taken again."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browsers = [await open_browser(relay, pod, name=f"b{i}", user_id=100 + i) for i in range(10)]
        await runner.send(frame(OUTPUT, b"ten"))
        for b in browsers:
            await b.expect(OUTPUT, b"ten")

        try:
            eleventh = await open_browser(relay, pod, name="b10", user_id=110)
        except InvalidStatus as e:
            raise AssertionError(f"the 11th upgrade was refused with HTTP {e.response.status_code}; "
                                 "expected 101 then close 1008") from None
        code, reason, frames = await eleventh.expect_closed(timeout=5)
        assert (code, reason) == (1008, "max subscribers reached"), (code, reason)
        assert all(t not in (0x01, 0x02) or p == b"ten" for t, p in frames), frames

        await runner.send(frame(OUTPUT, b"still ten"))
        for b in browsers:
            await b.expect(OUTPUT, b"still ten")

        await browsers[0].close()
        await wait_stats(relay, lambda s: s["total_subscribers"] + s["pending_subscribers"] == 9,
                         what="9 subscribers after one left")
        again = await open_browser(relay, pod, name="b11", user_id=111)
        await runner.send(frame(OUTPUT, b"new one"))
        _, _ = await again.recv_until(lambda t, p: t == OUTPUT and p == b"new one", what="output")

    run(main(), timeout=40)


def test_max_browsers_knob(start_relay):
    """--max-browsers-per-pod 2: the third browser is closed with 1008."""
    relay = start_relay("--max-browsers-per-pod", "2")

    async def main():
        pod = new_pod()
        await open_runner(relay, pod)
        ok = [await open_browser(relay, pod, name=f"b{i}", user_id=1 + i) for i in range(2)]
        third = await open_browser(relay, pod, name="b2", user_id=3)
        code, reason, _ = await third.expect_closed(timeout=5)
        assert (code, reason) == (1008, "max subscribers reached"), (code, reason)
        for b in ok:
            assert b.ws.close_code is None, f"{b.name} was closed too"

    run(main(), timeout=30)
