"""RFC 6455 conformance: the Autobahn|Testsuite cases, run by kosoku against
the relay's test-only echo endpoint (`--echo-endpoint`, ws://HOST:PORT/test/echo).

kosoku drives Autobahn's own case files and writes OUTDIR/index.json in
Autobahn's report format: {agent: {case_id: {"behavior", "behaviorClose",
"duration" (ms), ...}}}. The full per-case reports (JSON and HTML) stay in
OUTDIR, which is printed.
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

KOSOKU = Path(sys.executable).parent / "kosoku"

# Autobahn sections run here and how many cases each holds. 12.* and 13.*
# (permessage-deflate) are left out although the relay negotiates it (on
# /test/echo too): kosoku 0.1.0 cannot run them. Its inflater spins at 100%
# CPU forever on a compressed message that ends with a final DEFLATE block
# (RFC 7692 §7.2.3.3, which is how the relay compresses; a zlib echo server
# that sync-flushes passes), and its 12.x/13.x case code hashes the str
# kosoku hands it for an uncompressed echo (the relay sends messages under
# 64 B uncompressed): "Strings must be encoded before hashing". The offers
# the relay declines (13.3.*, 13.5.*: server_max_window_bits=9) would end
# UNIMPLEMENTED. test_compression.py covers the same ground with `websockets`.
SECTIONS = {"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "9": 54, "10": 1}

ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}

# Section 9 alone sends hundreds of MiB; a hung case must not hang CI.
KOSOKU_TIMEOUT = 20 * 60


def case_result(outdir: Path, entry: dict) -> str:
    """The verdict's reason, from the case's own report file."""
    try:
        report = json.loads((outdir / entry["reportfile"]).read_text())
    except (KeyError, OSError, ValueError):
        return "no report file"
    return f"{report.get('result')}; {report.get('resultClose')}"


def test_autobahn_conformance(start_relay, tmp_path, capsys):
    relay = start_relay("--echo-endpoint")
    outdir = tmp_path / "autobahn"
    argv = [str(KOSOKU), relay.ws_url("/test/echo"), "-o", str(outdir)]
    for section in SECTIONS:
        argv += ["-i", f"{section}.*"]
    # kosoku exits 1 when any case fails; the verdicts are read from index.json.
    run = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=KOSOKU_TIMEOUT
    )
    index_path = outdir / "index.json"
    assert index_path.exists(), (
        f"kosoku wrote no index.json (exit {run.returncode})\n"
        f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    )
    index = json.loads(index_path.read_text())
    assert len(index) == 1, f"expected one agent in index.json, got {list(index)}"
    (agent, cases), = index.items()

    ran = Counter(case_id.split(".")[0] for case_id in cases)
    section9_ms = sum(c["duration"] for case_id, c in cases.items() if case_id.startswith("9."))
    with capsys.disabled():
        print(
            f"\nautobahn: {len(cases)} cases against {agent!r}; "
            f"section 9 took {section9_ms / 1000:.2f} s in all; reports in {outdir}"
        )

    assert dict(ran) == SECTIONS, f"cases run per section {dict(ran)} != expected {SECTIONS}"

    failed = [
        f"{case_id}: behavior={c['behavior']} behaviorClose={c['behaviorClose']}"
        f" remoteCloseCode={c.get('remoteCloseCode')} ({case_result(outdir, c)})"
        for case_id, c in cases.items()
        if c["behavior"] not in ACCEPTED or c["behaviorClose"] not in ACCEPTED
    ]
    assert not failed, f"{len(failed)} Autobahn cases failed:\n" + "\n".join(failed)
