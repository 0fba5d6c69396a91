"""Abuse and edge cases found in review: a client that pings without
reading cannot grow the relay's memory; a runner that arrives after its
browsers is asked for a Snapshot."""
import asyncio
import os
import time

from relay_client import (RESYNC, frame, new_pod, open_browser, open_raw_browser, open_runner, vm_rss_bytes)

PING_PAYLOAD = os.urandom(125)


def masked_ping(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + masked


def test_ping_flood_without_reading_stays_bounded(start_relay):
    relay = start_relay()
    before = vm_rss_bytes(relay.proc.pid)
    raw = open_raw_browser(relay, new_pod(), rcvbuf=4096)
    raw.sock.setblocking(True)
    chunk = masked_ping(PING_PAYLOAD) * 500
    sent = 0
    deadline = time.monotonic() + 30
    # 60 MB of pings, never reading a Pong: each answer would be ~130 bytes of queue.
    while sent < 60_000_000 and time.monotonic() < deadline:
        raw.sock.sendall(chunk)
        sent += len(chunk)
    grown = vm_rss_bytes(relay.proc.pid) - before
    raw.close()
    assert sent >= 60_000_000, "the relay stopped reading a client that only pings"
    assert grown < 40 << 20, f"relay RSS grew by {grown >> 20} MiB answering pings nobody reads"


def test_runner_arriving_after_browsers_is_asked_for_a_snapshot(relay):
    async def main():
        pod = new_pod()
        browser = await open_browser(relay, pod)
        runner = await open_runner(relay, pod)
        t, _ = await runner.recv(timeout=5)
        assert t == RESYNC
        await runner.send(frame(0x01, b'{"cols":80,"rows":24,"serialized_content":"hi"}'))
        t, payload = await browser.recv(timeout=5)
        assert t == 0x01 and b"hi" in payload
        await browser.ws.close()
        await runner.ws.close()

    asyncio.run(main())
