"""AgentsMesh timers: a connection waiting for its counterpart is closed
after PENDING_CONNECTION_TIMEOUT; a pod outlives its last browser by
KEEP_ALIVE_DURATION, then its runner is closed; input typed while the runner
is away is held up to 64 KiB."""
import asyncio
import time

from relay_client import ERROR, INPUT, frame, new_pod, open_browser, open_runner, parse_error
from websockets.exceptions import ConnectionClosed


async def closed_code(peer, timeout):
    try:
        while True:
            await asyncio.wait_for(peer.ws.recv(), timeout)
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else ""


def test_pending_connections_time_out(start_relay):
    relay = start_relay("--pending-connection-timeout", "1s")

    async def main():
        t0 = time.monotonic()
        browser = await open_browser(relay, new_pod())          # no runner ever comes
        runner = await open_runner(relay, new_pod())            # no browser ever comes
        b, r = await asyncio.gather(closed_code(browser, 5), closed_code(runner, 5))
        elapsed = time.monotonic() - t0
        assert b == (1001, "pending connection timeout"), b
        assert r == (1001, "pending connection timeout"), r
        assert 0.8 < elapsed < 4, elapsed

    asyncio.run(main())


def test_pod_kept_alive_after_last_browser_then_runner_closed(start_relay):
    relay = start_relay("--keep-alive-duration", "1s")

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(relay, pod)
        await browser.ws.close()
        t0 = time.monotonic()
        # A browser returning within the keep-alive finds the pod (and runner) alive.
        await asyncio.sleep(0.3)
        again = await open_browser(relay, pod, name="again")
        await runner.send(frame(0x02, b"still here"))
        t, payload = await again.recv(timeout=5)
        while t != 0x02:
            t, payload = await again.recv(timeout=5)
        assert payload == b"still here"
        await again.ws.close()
        t0 = time.monotonic()
        code = await closed_code(runner, 5)
        assert code == (1000, "no subscribers"), code
        assert time.monotonic() - t0 > 0.8

    asyncio.run(main())


def test_input_held_while_runner_away_is_bounded(start_relay):
    relay = start_relay("--runner-reconnect-timeout", "10s")

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(relay, pod, ext=True)
        await runner.ws.close()
        await browser.recv_until(lambda t, p: t == 0x08, what="runner away")
        chunk = b"k" * 1000
        for _ in range(70):                        # 70 KB: the last ~6 do not fit in 64 KiB
            await browser.send(frame(INPUT, chunk))
        _, (t, payload) = await browser.recv_until(lambda t, p: t == ERROR, what="input buffer full")
        code, reason = parse_error(payload)
        assert code == 503, (code, reason)
        back = await open_runner(relay, pod, name="back")
        got = 0
        while got < 65:
            t, payload = await back.recv(timeout=5)
            if t == INPUT:
                assert payload == chunk
                got += 1
        # 65 × 1001 bytes fit in 64 KiB; the refused ones must not follow.
        await browser.send(frame(INPUT, b"end"))
        t, payload = await back.recv(timeout=5)
        while t != INPUT:
            t, payload = await back.recv(timeout=5)
        assert payload == b"end", f"a 66th held input arrived: {len(payload)} bytes"
        await back.send(frame(0x02, b"x"))
        await browser.recv_until(lambda t, p: t == 0x02, what="output after return")

    asyncio.run(main())
