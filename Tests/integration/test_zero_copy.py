"""Fan-out shares one encoded frame between subscribers: the relay's slab
(buffer) allocations while a runner publishes grow with the frames, not
with frames × browsers (relay_slab_allocations_total in /metrics). Over
ws:// and over wss:// (TLS encrypts per subscriber, but must not allocate a
buffer per subscriber and frame for it)."""
import asyncio
import re

import pytest

from conftest import over_transport
from relay_client import frame, new_pod, open_browser, open_runner

FRAMES = 2000
PAYLOAD = b"x" * 100


@pytest.fixture(params=["ws", "wss"])
def start_relay(request, start_relay):
    return over_transport(request, start_relay)


def slab_allocations(relay) -> int:
    with relay.urlopen("/metrics") as resp:
        text = resp.read().decode()
    m = re.search(r"^relay_slab_allocations_total (\d+)$", text, re.M)
    assert m, text
    return int(m.group(1))


async def publish_and_count(relay, browsers: int) -> int:
    pod = new_pod()
    runner = await open_runner(relay, pod)
    peers = [await open_browser(relay, pod, name=f"b{i}", user_id=1000 + i) for i in range(browsers)]
    await asyncio.sleep(0.3)  # joins settle (handshakes, resync requests)
    before = slab_allocations(relay)
    for i in range(FRAMES):
        await runner.send(frame(0x02, PAYLOAD))
    for p in peers:
        got = 0
        while got < FRAMES:
            t, payload = await p.recv(timeout=10)
            if t == 0x02:
                assert payload == PAYLOAD
                got += 1
    after = slab_allocations(relay)
    for p in peers + [runner]:
        await p.ws.close()
    return after - before


def test_no_buffer_per_subscriber(start_relay):
    relay = start_relay("--loops", "1", "--max-browsers-per-pod", "50")

    async def main():
        one = await publish_and_count(relay, 1)
        many = await publish_and_count(relay, 40)
        return one, many

    one, many = asyncio.run(main())
    print(f"slab allocations while publishing {FRAMES} frames: 1 browser {one}, 40 browsers {many}")
    # A copy per subscriber would be 2000 × 39 more allocations; sharing
    # costs the same few arena chunks whatever the fan-out.
    assert one < FRAMES // 10, f"{one} slabs for {FRAMES} frames to one browser"
    assert many <= one + 5, f"1 browser: {one} slabs; 40 browsers: {many} slabs"
