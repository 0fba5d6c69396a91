"""Half-open detection: the relay pings every connection and closes the ones
that stay silent (docs/protocol.md, Liveness). When exactly (2 intervals, not
before) is a unit test on the loop's virtual clock
(Tests/RelayNodeTests/LivenessTests.swift); here only that it happens, with
a real client, within a generous deadline."""

import asyncio
import pytest

from relay_client import (
    OUTPUT, RUNNER_DISCONNECTED, frame, new_pod, open_browser, open_raw_browser, open_raw_runner,
    open_runner, run,
)

# Generous: the rule is 2 × 1 s; this only bounds how long the test waits.
DEADLINE = 10


@pytest.mark.parametrize("role", ["browser", "runner"])
def test_silent_peer_closed_and_live_peers_kept(start_relay, role):
    """--ping-interval 1s. A raw-socket peer completes the handshake and never
    sends a byte (never answers pings): the relay pings it and then drops the
    connection (EOF or RST). A `websockets` peer on the same pod, which
    answers pings, is still served after that."""
    relay = start_relay("--ping-interval", "1s")

    async def main():
        pod = new_pod()
        if role == "browser":
            healthy = await open_runner(relay, pod)
            other = await open_browser(relay, pod, name="healthy-browser", user_id=2)
            raw = await asyncio.to_thread(open_raw_browser, relay, pod, user_id=1)
        else:
            other = await open_browser(relay, pod, name="healthy-browser", user_id=2)
            raw = await asyncio.to_thread(open_raw_runner, relay, pod)
            healthy = None
        try:
            seen = await asyncio.to_thread(raw.wait_eof, DEADLINE)
        except TimeoutError:
            raise AssertionError(f"silent {role} still connected {DEADLINE} s after its handshake") from None
        raw.close()
        pings = [m for m in seen if m.opcode == 0x9]
        assert pings, f"the relay sent no WebSocket ping before dropping the {role} (saw opcodes {[m.opcode for m in seen]})"

        # The ping-answering peers are still served after the silent one went.
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
