"""The relay's own clients over TLS: `relay attach --url wss://… --ca-file`
(or `--insecure`) as a pod's runner, and `loadgen --tls` (fanout and echo)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import LOADGEN_BIN, RELAY_BIN, REPO, TEST_JWT_SECRET, relay_env
from relay_client import INPUT, OUTPUT, frame, open_browser, run, stats, wait_stats
from test_attach import stop
from tls_client import log_events, tls_stats, wait_log, wait_new_failures

POD = "attach-tls"


@pytest.fixture
def tls_relay(start_relay, tls_certs):
    def start(*args: str):
        return start_relay(*tls_certs.relay_args(), *args, tls=tls_certs.client_context())
    return start


def start_attach(relay, tmp_path, *flags: str, command=("bash", "--norc", "--noprofile", "-i")):
    """`relay attach --url wss://… <flags> -- command`, in its own session."""
    log_path = tmp_path / f"attach-{time.monotonic_ns()}.log"
    argv = [str(REPO / RELAY_BIN), "attach", "--url", relay.ws_url("").rstrip("/"), "--pod", POD,
            "--secret", TEST_JWT_SECRET, *flags, "--", *command]
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = relay_env({"HOME": str(home), "PS1": "$ ", "TERM": "xterm", "HISTFILE": "/dev/null"})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                cwd=tmp_path, start_new_session=True)
    return proc, lambda: log_path.read_text(errors="replace")


async def shell_round_trip(relay) -> None:
    """A browser types `echo mark-$((6*7))`; the shell's `mark-42` comes back."""
    await wait_stats(relay, lambda s: s["pending_publishers"] + s["active_channels"] >= 1,
                     timeout=10, what="the attached runner")
    browser = await open_browser(relay, POD, user_id=1001)
    await browser.send(frame(INPUT, b"echo mark-$((6*7))\n"))
    output = bytearray()
    deadline = time.monotonic() + 10
    while b"mark-42" not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no mark-42 in the output within 10 s: {bytes(output)!r}"
        t, p = await browser.recv(remaining)
        if t == OUTPUT:
            output += p
    await browser.close()


def attached_runner_entry(relay, tmp_path, *flags) -> dict:
    """Starts `relay attach` with `flags`, checks a browser's round trip to
    its shell, and returns the relay's 'runner connected' log entry (the
    attach log is added to a failed assertion)."""
    proc, log = start_attach(relay, tmp_path, *flags)
    try:
        run(shell_round_trip(relay), timeout=40)
        return wait_log(relay, lambda e: e.get("msg") == "runner connected" and e.get("pod") == POD,
                        what="'runner connected' for the attached runner")
    except AssertionError as e:
        e.args = (f"{e.args[0] if e.args else ''}\nrelay attach log:\n{log()}",)
        raise
    finally:
        stop(proc)


@pytest.mark.parametrize("trust", ["ca-file", "insecure"])
def test_attach_over_wss(tls_relay, tls_certs, tmp_path, trust):
    """`relay attach --url wss://127.0.0.1:PORT --ca-file CA` (or
    `--insecure`) runs bash as the pod's runner over TLS: a wss:// browser's
    keystrokes reach it and its output comes back; the relay logs the runner
    with transport=TLSv1.x."""
    relay = tls_relay()
    flags = ["--ca-file", str(tls_certs.ca.cert)] if trust == "ca-file" else ["--insecure"]
    r = attached_runner_entry(relay, tmp_path, *flags)
    assert r.get("transport", "").startswith("TLSv1."), r


def test_attach_refuses_an_unknown_ca(tls_relay, tmp_path):
    """Without --ca-file or --insecure, `relay attach` verifies the relay's
    certificate against the system's CAs, which do not include the test CA:
    the relay sees a failed handshake and no runner ever joins."""
    relay = tls_relay()
    before = tls_stats(relay)
    proc, log = start_attach(relay, tmp_path, command=("sleep", "30"))
    try:
        delta = wait_new_failures(relay, before, timeout=10, what="attach without the CA")
        print(f"attach without the CA: {delta}")
        time.sleep(0.5)
        s = stats(relay)
        assert s["pending_publishers"] == 0 and s["active_channels"] == 0, f"a runner joined: {s}\n{log()}"
        assert not any(e.get("msg") == "runner connected" for e in log_events(relay.stderr())), relay.stderr()[-2000:]
    finally:
        stop(proc)
    print(f"relay attach log:\n{log()[-1500:]}")


def test_attach_with_a_client_certificate(start_relay, tls_certs, tmp_path):
    """Mutual TLS with --tls-runner-subject '/CN=runner-*/O=mesh': `relay
    attach --ca-file CA --client-cert runner.pem --client-key runner.key` is
    accepted as the runner (log: peer=/CN=runner-1/O=mesh) and its shell
    answers a browser."""
    relay = start_relay(*tls_certs.relay_args(client_ca=tls_certs.ca.cert),
                        "--tls-runner-subject", "/CN=runner-*/O=mesh",
                        tls=tls_certs.client_context(tls_certs.viewer))
    r = attached_runner_entry(relay, tmp_path, "--ca-file", str(tls_certs.ca.cert),
                              "--client-cert", str(tls_certs.runner.cert), "--client-key", str(tls_certs.runner.key))
    assert r.get("peer") == "/CN=runner-1/O=mesh", r


def run_loadgen(relay, tmp_path, *args):
    out = tmp_path / "result.json"
    cmd = [str(LOADGEN_BIN), *args, "--url", relay.ws_url("").rstrip("/"), "--secret", TEST_JWT_SECRET,
           "--server-pid", str(relay.proc.pid), "--duration", "1", "--warmup", "0.3", "--json", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    result = json.loads(out.read_text())
    assert result["ok"] is True, result
    return result, proc.stdout


def test_loadgen_fanout_over_tls(tls_relay, tls_certs, tmp_path):
    """`loadgen fanout --tls --ca-file CA` against a TLS relay: every frame
    reaches every subscriber; the relay counted at least one TLS handshake
    per connection."""
    relay = tls_relay("--max-browsers-per-pod", "100")
    before = tls_stats(relay)
    result, table = run_loadgen(relay, tmp_path, "fanout", "--tls", "--ca-file", str(tls_certs.ca.cert),
                                "--pods", "2", "--subscribers", "5", "--max", "--window", "8")
    assert result["sent"] > 0, table
    assert result["delivered"] == result["expected"] == result["sent"] * 5, table
    assert result["errors"] == 0 and result["dropped"] == 0, result
    after = tls_stats(relay)
    assert after["handshakes"] - before["handshakes"] >= 2 * 6, (before, after)


def test_loadgen_echo_over_tls_insecure(tls_relay, tmp_path):
    """`loadgen echo --tls --insecure` against a TLS relay's echo endpoint:
    every message comes back."""
    relay = tls_relay("--echo-endpoint")
    before = tls_stats(relay)
    result, table = run_loadgen(relay, tmp_path, "echo", "--tls", "--insecure", "--connections", "4", "--size", "512")
    assert result["sent"] > 0, table
    assert result["delivered"] == result["sent"], table
    after = tls_stats(relay)
    assert after["handshakes"] - before["handshakes"] >= 4, (before, after)
