"""Fixtures that run the real relay binary on loopback for the integration tests.

The binary is `.build/release/relay` (built by `make test`); set RELAY_BIN to
run another one. `loadgen` is the one beside it (LOADGEN_BIN overrides).

A relay started with `tls=<client ssl.SSLContext>` (and `--tls …` flags, see
tls_certs.py) is reached over https:// and wss:// with that context.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tls_certs import tls_certs  # noqa: F401  (the session fixture, for every test module)

REPO = Path(__file__).resolve().parents[2]
RELAY_BIN = Path(os.environ.get("RELAY_BIN", REPO / ".build" / "release" / "relay"))
LOADGEN_BIN = Path(os.environ.get("LOADGEN_BIN", RELAY_BIN.parent / "loadgen"))
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
TEST_JWT_SECRET = "integration-test-secret"
STDERR_SHOWN = 20_000  # chars of a relay's stderr shown with a failed test

# Settings a developer's shell may carry that would change the relay under test
# (each name is also read with a RELAY_ prefix).
_SETTING_PREFIXES = ("RELAY_", "SERVER_", "JWT_", "TLS_")
_SETTING_NAMES = {
    "LOOPS", "DEV_MODE", "ECHO_ENDPOINT", "WEB_ROOT", "LOG_FORMAT", "LOG_LEVEL",
    "KEEP_ALIVE_DURATION", "MAX_BROWSERS_PER_POD", "RUNNER_RECONNECT_TIMEOUT",
    "PENDING_CONNECTION_TIMEOUT", "HEARTBEAT_INTERVAL", "PING_INTERVAL",
    "HANDSHAKE_TIMEOUT", "MAX_MESSAGE_SIZE", "OUTBOUND_QUEUE_BYTES",
    "REPLAY_RING_BYTES", "ALLOWED_ORIGINS", "INTERNAL_API_SECRET", "BACKEND_URL",
}


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def relay_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a relay: this one without relay settings, plus `env`."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SETTING_PREFIXES) and k not in _SETTING_NAMES
    }
    base["JWT_SECRET"] = TEST_JWT_SECRET
    # Stop at once on SIGTERM (tests stop many relays); the drain is tested on its own.
    base["SHUTDOWN_GRACE"] = "0s"
    base.update(env or {})
    return base


class Relay:
    """A running relay process on a loopback port."""

    def __init__(self, port: int, proc: subprocess.Popen, stderr_path: Path, args: list[str],
                 client_ssl: ssl.SSLContext | None = None):
        self.host = HOST
        self.port = port
        self.proc = proc
        self.stderr_path = stderr_path
        self.args = args
        # TLS relays: the context clients use (None: plain ws:// and http://).
        self.client_ssl = client_ssl

    @property
    def tls(self) -> bool:
        return self.client_ssl is not None

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{path}"

    def ws_url(self, path: str = "/") -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}{path}"

    def urlopen(self, path: str, timeout: float = 5):
        """urllib.request.urlopen of `path` (over TLS with the relay's client context)."""
        return urllib.request.urlopen(self.url(path), timeout=timeout, context=self.client_ssl)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"relay exited with {code} before answering /health\n"
                    f"args: {self.args}\nstderr:\n{self.stderr()}"
                )
            try:
                with self.urlopen("/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last_error = e
            time.sleep(0.05)
        raise RuntimeError(
            f"relay did not answer GET /health within {timeout:.0f} s "
            f"(last error: {last_error})\nargs: {self.args}\nstderr:\n{self.stderr()}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def start_relay(request, tmp_path):
    """Returns start(*args, env=None, port=None, tls=None) -> Relay.

    Starts the release relay on a free loopback port with the extra command-line
    `args` and environment `env`, waits until GET /health answers (20 s at most),
    and stops it when the test ends. Its stderr goes to a file that is shown
    when the test fails. `tls`: the client context for a relay started with
    `--tls` (its URLs are then https:// and wss://).
    """
    started: list[Relay] = []
    request.node._relays = started

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None,
              tls: ssl.SSLContext | None = None) -> Relay:
        if not RELAY_BIN.exists():
            pytest.fail(f"{RELAY_BIN} does not exist: run `swift build -c release --product relay`")
        port = port or free_port()
        argv = [str(RELAY_BIN), "--host", HOST, "--port", str(port), *args]
        stderr_path = tmp_path / f"relay-{port}-{len(started)}.stderr"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=relay_env(env),
                cwd=REPO,
            )
        relay = Relay(port, proc, stderr_path, argv, client_ssl=tls)
        started.append(relay)
        relay.wait_healthy()
        return relay

    yield start
    for relay in started:
        relay.stop()


def over_transport(request, start_relay):
    """For a module fixture `start_relay` parametrized over ("ws", "wss"): the
    conftest `start_relay` as is, or one that adds the TLS flags and client
    context (certificates from tls_certs.py)."""
    if request.param == "ws":
        return start_relay
    certs = request.getfixturevalue("tls_certs")

    def start_tls(*args: str, **kw) -> Relay:
        return start_relay(*certs.relay_args(), *args, tls=certs.client_context(), **kw)

    return start_tls


@pytest.fixture
def relay(start_relay) -> Relay:
    """A relay with default settings (and JWT_SECRET set)."""
    return start_relay()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the stderr of every relay a failed test started to its report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for relay in getattr(item, "_relays", []):
            text = relay.stderr() or "(empty)"
            if len(text) > STDERR_SHOWN:
                text = f"[... first {len(text) - STDERR_SHOWN} chars cut; all in {relay.stderr_path}]\n" + text[-STDERR_SHOWN:]
            report.sections.append((f"relay stderr (port {relay.port}, {' '.join(relay.args[1:])})", text))
