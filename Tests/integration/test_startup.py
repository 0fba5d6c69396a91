"""Start-up failures: clear message, non-zero exit, no hang."""

import subprocess

from conftest import HOST, RELAY_BIN, relay_env

EXIT_TIMEOUT = 10


def run_relay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RELAY_BIN), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=relay_env(),
        timeout=EXIT_TIMEOUT,
    )


def test_second_relay_on_same_port_fails(relay):
    second = run_relay("--host", HOST, "--port", str(relay.port))
    assert second.returncode != 0, second.stderr
    assert f"port {relay.port} is already in use" in second.stderr
    # The first one is untouched.
    assert relay.proc.poll() is None


def test_invalid_port_is_refused():
    result = run_relay("--host", HOST, "--port", "99999")
    assert result.returncode != 0, result.stderr
    assert "port" in result.stderr.lower()
