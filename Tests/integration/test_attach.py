"""`relay attach`: a real command on a pseudo-terminal as a pod's runner,
driven by a `websockets` browser (docs/protocol.md §5 Frames: Input, Resize,
Resync, Snapshot, Output)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import RELAY_BIN, REPO, TEST_JWT_SECRET, relay_env
from relay_client import (
    INPUT, OUTPUT, RESYNC, SNAPSHOT, describe, frame, open_browser, resize, run, wait_stats,
)

POD = "attach-test"
EXIT_TIMEOUT = 10.0


def start_attach(relay, tmp_path, *command: str) -> tuple[subprocess.Popen, object]:
    """`relay attach … -- command` against `relay`, in its own session; its
    output goes to a file (returned as a callable that reads it)."""
    log_path = tmp_path / "attach.log"
    argv = [str(REPO / RELAY_BIN), "attach", "--url", relay.ws_url("").rstrip("/"), "--pod", POD,
            "--secret", TEST_JWT_SECRET, "--", *command]
    home = tmp_path / "home"
    home.mkdir()
    env = relay_env({"HOME": str(home), "PS1": "$ ", "TERM": "xterm", "HISTFILE": "/dev/null"})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                cwd=tmp_path, start_new_session=True)
    return proc, lambda: log_path.read_text(errors="replace")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def test_attach_resize_input_resync_exit(relay, tmp_path):
    """A browser resizes the PTY to 100x30 and types `stty size; echo
    mark-$((6*7))`: Output shows `30 100` and `mark-42` (neither is in the
    echoed command line). Resync is answered by a Snapshot whose
    serialized_content holds `mark-42`. `exit 3` ends bash and `relay attach`
    exits with status 3 within 10 s."""
    proc, attach_log = start_attach(relay, tmp_path, "bash", "--norc", "--noprofile", "-i")
    try:
        async def main():
            # The runner is connected (pending until a browser joins).
            await wait_stats(relay, lambda s: s["pending_publishers"] + s["active_channels"] >= 1,
                             timeout=10, what="the attached runner")
            browser = await open_browser(relay, POD, user_id=1001)

            await browser.send(resize(100, 30))
            await browser.send(frame(INPUT, b"stty size; echo mark-$((6*7))\n"))
            output = bytearray()
            deadline = time.monotonic() + 10
            while not (b"30 100" in output and b"mark-42" in output):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no `30 100` and `mark-42` in the output within 10 s: {bytes(output)!r}"
                t, p = await browser.recv(remaining)
                if t == OUTPUT:
                    output += p

            await browser.send(frame(RESYNC))
            skipped, (_, p) = await browser.recv_until(lambda t, p: t == SNAPSHOT, timeout=10,
                                                        what="Snapshot after Resync")
            assert all(t == OUTPUT for t, _ in skipped), [describe(*f) for f in skipped]
            snap = json.loads(p)
            assert "mark-42" in snap["serialized_content"], snap
            assert (snap["cols"], snap["rows"]) == (100, 30), snap

            await browser.send(frame(INPUT, b"exit 3\n"))
            await browser.sync()

        run(main(), timeout=40)
        try:
            code = proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"relay attach still running {EXIT_TIMEOUT} s after `exit 3`\n{attach_log()}") from None
        assert code == 3, f"relay attach exited with {code}, expected 3\n{attach_log()}"
    except BaseException as e:
        if isinstance(e, AssertionError) and "relay attach" not in str(e):
            e.args = (f"{e.args[0] if e.args else ''}\nrelay attach log:\n{attach_log()}",)
        raise
    finally:
        stop(proc)
