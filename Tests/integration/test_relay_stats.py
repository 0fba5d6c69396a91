"""GET /stats (docs/protocol.md §1, Endpoints)."""

import json
import urllib.request

import pytest

from relay_client import new_pod, open_browser, open_runner, run, stats, wait_stats

KEYS = {"active_channels", "total_subscribers", "pending_publishers", "pending_subscribers"}


@pytest.mark.parametrize("path", ["/stats", "/relay/stats"])
def test_stats_shape(relay, path):
    with urllib.request.urlopen(relay.url(path), timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
        body = json.loads(resp.read())
    assert KEYS <= set(body), f"missing keys: {KEYS - set(body)} in {body}"
    for k in KEYS:
        assert type(body[k]) is int, f"{k} = {body[k]!r} is not an integer"
    assert {k: body[k] for k in KEYS} == dict.fromkeys(KEYS, 0), f"fresh relay: {body}"


def test_stats_counts_a_paired_pod(start_relay):
    """One runner + two browsers on a pod: active_channels 1, total_subscribers 2,
    nothing pending; back down when they leave."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        b1 = await open_browser(relay, pod, user_id=1)
        b2 = await open_browser(relay, pod, user_id=2)
        s = await wait_stats(
            relay,
            lambda s: (s["active_channels"], s["total_subscribers"], s["pending_publishers"],
                       s["pending_subscribers"]) == (1, 2, 0, 0),
            what="(active_channels, total_subscribers, pending_publishers, pending_subscribers) = (1, 2, 0, 0)")
        assert all(type(s[k]) is int for k in KEYS)

        # A second pod, browser only: it waits for its runner.
        lonely = await open_browser(relay, new_pod(), user_id=3)
        await wait_stats(relay, lambda s: s["pending_subscribers"] == 1 and s["active_channels"] == 1,
                         what="a pending subscriber for the runnerless pod")
        await lonely.close()

        await b1.close()
        await wait_stats(relay, lambda s: s["total_subscribers"] == 1, what="total_subscribers 1 after one left")
        await b2.close()
        await wait_stats(relay, lambda s: s["total_subscribers"] == 0 and s["pending_subscribers"] == 0,
                         what="no subscribers after both left")
        await runner.close()

    run(main(), timeout=30)


def test_stats_pending_runner(start_relay):
    """A runner with no browser yet is a pending publisher (as in AgentsMesh)."""
    relay = start_relay()

    async def main():
        runner = await open_runner(relay, new_pod())
        await wait_stats(relay, lambda s: s["pending_publishers"] == 1 and s["active_channels"] == 0,
                         what="pending_publishers 1, active_channels 0")
        await runner.close()
        await wait_stats(relay, lambda s: s["pending_publishers"] == 0, what="pending_publishers 0 after it left")

    run(main(), timeout=30)


def test_stats_is_valid_json_under_load(start_relay):
    """Counters stay consistent integers while connections come and go."""
    relay = start_relay()

    async def main():
        pods = [new_pod() for _ in range(5)]
        runners = [await open_runner(relay, p) for p in pods]
        browsers = [await open_browser(relay, p, user_id=i + 1) for i, p in enumerate(pods) for _ in range(2)]
        await wait_stats(relay, lambda s: s["active_channels"] == 5 and s["total_subscribers"] == 10,
                         what="5 channels, 10 subscribers")
        for b in browsers:
            await b.close()
        for r in runners:
            await r.close()
        s = stats(relay)
        assert all(type(s[k]) is int and s[k] >= 0 for k in KEYS), s

    run(main(), timeout=30)
