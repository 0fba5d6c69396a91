"""The dev-mode terminal page over TLS: `relay --dev --tls …` prints an
https:// address; headless Chromium (told to accept the test CA's
certificate with --ignore-certificate-errors) loads the page over https://,
the page's WebSocket is wss:// (an https page may not open ws://), typing
reaches the demo pod's shell (whose `relay attach` runner also comes in over
TLS) and its output comes back."""

from __future__ import annotations

import time

import pytest

from tls_client import log_events

pytest.importorskip("selenium")
from test_browser_terminal import DevRelay, drive_terminal, start_chromium  # noqa: E402


@pytest.fixture
def dev_tls_relay(tmp_path, tls_certs):
    relay = DevRelay(tmp_path, *tls_certs.relay_args(), scheme="https")
    yield relay
    lingering = relay.stop()
    assert not lingering, f"processes left after stopping the dev relay (killed now): {lingering}"


@pytest.fixture
def chromium_accepting_any_certificate(tmp_path):
    driver = start_chromium(tmp_path, "--ignore-certificate-errors")
    yield driver
    driver.quit()


def test_terminal_page_over_https_and_wss(dev_tls_relay, chromium_accepting_any_certificate, tmp_path):
    """As test_terminal_page_runs_a_shell, over https:// and wss://; then the
    relay's log shows the browser and the demo runner connected over TLS
    (transport=TLSv1.x), and the page's address is https://."""
    drive_terminal(dev_tls_relay, chromium_accepting_any_certificate, tmp_path)
    assert chromium_accepting_any_certificate.current_url.startswith("https://")
    deadline = time.monotonic() + 5
    while True:
        events = log_events(dev_tls_relay.stderr())
        runners = [e for e in events if e.get("msg") == "runner connected"]
        browsers = [e for e in events if e.get("msg") == "browser connected"]
        if (runners and browsers) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert browsers, f"no 'browser connected' line:\n{dev_tls_relay.stderr()[-3000:]}"
    assert all(e.get("transport", "").startswith("TLSv1.") for e in browsers), browsers
    # Chromium offers h2 and http/1.1 and gets h2; its socket then comes as a
    # WebSocket over HTTP/2 (RFC 8441) on that connection, or, should it open
    # one of its own, over HTTP/1.1 (test_http2.py insists on the former).
    for e in browsers:
        assert (e.get("alpn"), e.get("stream")) in (("h2", "ws-over-h2"), ("http/1.1", "ws")), browsers
    assert runners and all(e.get("transport", "").startswith("TLSv1.") for e in runners), runners
