"""GET /health, as probes and Traefik see it (docs/protocol.md §1, Endpoints)."""

import json
import urllib.request

import pytest


@pytest.mark.parametrize("path", ["/health", "/relay/health"])
def test_health_answers_ok(relay, path):
    with urllib.request.urlopen(relay.url(path), timeout=5) as resp:
        body = resp.read()
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
    assert json.loads(body) == {"status": "ok"}
