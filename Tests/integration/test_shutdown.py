"""SIGTERM drains: /health answers 503, new upgrades are refused, every
WebSocket gets Close 1001, and the process exits 0 after the grace period."""
import asyncio
import signal
import time
import urllib.error
import urllib.request

from relay_client import new_pod, open_browser, open_runner
from websockets.exceptions import ConnectionClosed


def health_status(relay) -> int:
    try:
        return urllib.request.urlopen(relay.url("/health"), timeout=2).status
    except urllib.error.HTTPError as e:
        return e.code


def test_sigterm_drains_then_exits(start_relay):
    relay = start_relay(env={"SHUTDOWN_GRACE": "2s"})

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(relay, pod)
        assert health_status(relay) == 200
        sent = time.monotonic()
        relay.proc.send_signal(signal.SIGTERM)
        codes = []
        for peer in (runner, browser):
            try:
                while True:
                    await asyncio.wait_for(peer.ws.recv(), 5)
            except ConnectionClosed as e:
                codes.append(e.rcvd.code if e.rcvd else None)
        assert codes == [1001, 1001]
        assert health_status(relay) == 503          # still up, draining
        return sent

    sent = asyncio.run(main())
    assert relay.proc.wait(timeout=10) == 0
    assert time.monotonic() - sent >= 1.5            # it waited for the grace period
