"""loadgen itself, against the real relay: every frame sent is counted as
delivered (reach 100%), and the JSON report carries every field. No timing
is asserted (benchmarks live in Benchmarks/)."""
import json
import subprocess

from conftest import LOADGEN_BIN, TEST_JWT_SECRET

LOADGEN = LOADGEN_BIN

FIELDS = {
    "scenario", "target", "url", "client_loops", "ok", "duration_s", "sent", "delivered", "expected", "reach",
    "deliveries_per_s", "mb_per_s", "latency_us", "errors", "dropped", "lags", "client_cpu_percent",
    "server_cpu_percent", "server_cpu_us_per_delivery", "server_rss_bytes",
}
LATENCY = {"p50", "p90", "p99", "p999", "max", "count"}


def run_loadgen(relay, tmp_path, *args):
    out = tmp_path / "result.json"
    cmd = [str(LOADGEN), *args, "--url", relay.ws_url("").rstrip("/"), "--secret", TEST_JWT_SECRET,
           "--server-pid", str(relay.proc.pid), "--duration", "2", "--warmup", "0.5", "--json", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    missing = FIELDS - result.keys()
    assert not missing, f"JSON lacks {missing}"
    assert LATENCY <= result["latency_us"].keys()
    assert result["ok"] is True
    return result, proc.stdout


def test_fanout_reaches_every_subscriber(start_relay, tmp_path):
    relay = start_relay("--max-browsers-per-pod", "100")
    result, table = run_loadgen(relay, tmp_path, "fanout", "--pods", "3", "--subscribers", "20", "--max", "--window", "16")
    assert result["scenario"] == "fanout" and result["target"] == "relay"
    assert result["sent"] > 0
    assert result["expected"] == result["sent"] * 20
    assert result["delivered"] == result["expected"], table
    assert result["reach"] == 1.0
    assert result["errors"] == 0 and result["dropped"] == 0
    assert result["latency_us"]["count"] > 0
    assert result["server_cpu_us_per_delivery"] is not None
    assert "deliveries/s" in table


def test_fanout_open_loop_at_a_fixed_rate(start_relay, tmp_path):
    relay = start_relay()
    result, table = run_loadgen(relay, tmp_path, "fanout", "--pods", "2", "--subscribers", "5", "--rate", "500")
    # How many frames a rate gives in a time is a unit test of the schedule
    # (Tests/LoadGenTests/OpenLoopScheduleTests.swift); here: the run ends by
    # itself, sends, and every frame reaches every subscriber.
    assert result["sent"] > 0, table
    assert result["delivered"] == result["sent"] * 5


def test_echo_round_trips(start_relay, tmp_path):
    relay = start_relay("--echo-endpoint")
    result, table = run_loadgen(relay, tmp_path, "echo", "--connections", "10", "--size", "512")
    assert result["sent"] > 0
    assert result["delivered"] == result["sent"], table
    assert result["reach"] == 1.0


def test_connections_reports_memory_per_connection(start_relay, tmp_path):
    relay = start_relay()
    out = tmp_path / "c.json"
    proc = subprocess.run([str(LOADGEN), "connections", "--url", relay.ws_url("").rstrip("/"), "--secret", TEST_JWT_SECRET,
                           "--server-pid", str(relay.proc.pid), "--connections", "200", "--duration", "1",
                           "--json", str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["connections_total"] == 200 + 23
    assert result["server_rss_bytes"] > 0
    assert "server_rss_bytes_per_connection" in result


def test_fanout_over_two_worker_processes(start_relay, tmp_path):
    """--processes 2 splits the pods over two workers that measure the same
    window; the parent merges their counts and latency histograms."""
    relay = start_relay("--max-browsers-per-pod", "100")
    result, table = run_loadgen(relay, tmp_path, "fanout", "--pods", "4", "--subscribers", "10", "--max",
                                "--window", "8", "--processes", "2")
    assert result["sent"] > 0
    assert result["delivered"] == result["expected"] == result["sent"] * 10, table
    assert result["latency_us"]["count"] > 0
    assert sum(c for _, c in result["latency_histogram"]) == result["latency_us"]["count"]
