"""Half-open detection: the relay pings every connection and closes the ones
that stay silent for 2 intervals (PROTOCOL.md B, Liveness)."""

import asyncio
import time

import pytest

from relay_client import (
    OUTPUT, RUNNER_DISCONNECTED, frame, new_pod, open_browser, open_raw_browser, open_raw_runner,
    open_runner, run,
)

LIMIT = 3.5


@pytest.mark.parametrize("role", ["browser", "runner"])
def test_silent_peer_closed_within_two_intervals(start_relay, role):
    """--ping-interval 1s. A raw-socket peer completes the handshake and never
    sends a byte (never answers pings): the relay pings it and then drops the
    connection (EOF or RST) within 3.5 s, not before 1 s. A `websockets` peer
    on the same pod, which answers pings, is still served after that."""
    relay = start_relay("--ping-interval", "1s")

    async def main():
        pod = new_pod()
        if role == "browser":
            healthy = await open_runner(relay, pod)
            other = await open_browser(relay, pod, name="healthy-browser", user_id=2)
            t0 = time.monotonic()
            raw = await asyncio.to_thread(open_raw_browser, relay, pod, user_id=1)
        else:
            other = await open_browser(relay, pod, name="healthy-browser", user_id=2)
            t0 = time.monotonic()
            raw = await asyncio.to_thread(open_raw_runner, relay, pod)
            healthy = None
        try:
            seen = await asyncio.to_thread(raw.wait_eof, LIMIT + 1.5)
        except TimeoutError:
            raise AssertionError(f"silent {role} still connected {LIMIT + 1.5} s after its handshake") from None
        elapsed = time.monotonic() - t0
        raw.close()
        assert elapsed <= LIMIT, f"silent {role} dropped after {elapsed:.2f} s (limit {LIMIT} s)"
        assert elapsed >= 1.0, f"silent {role} dropped after only {elapsed:.2f} s"
        pings = [m for m in seen if m.opcode == 0x9]
        assert pings, f"the relay sent no WebSocket ping before dropping the {role} (saw opcodes {[m.opcode for m in seen]})"

        # The ping-answering peers survive beyond the limit.
        await asyncio.sleep(max(0.0, LIMIT + 0.5 - (time.monotonic() - t0)))
        if role == "browser":
            await healthy.send(frame(OUTPUT, b"still here"))
            await other.recv_until(lambda t, p: t == OUTPUT and p == b"still here", what="output")
        else:
            # The silent runner's departure is a runner disconnect for the browser.
            await other.recv_until(lambda t, p: t == RUNNER_DISCONNECTED, what="0x08")
            runner = await open_runner(relay, pod)
            await runner.send(frame(OUTPUT, b"still here"))
            await other.recv_until(lambda t, p: t == OUTPUT and p == b"still here", what="output")

    run(main(), timeout=30)
