"""TLS on the relay's one port: https:// and wss:// with the same tokens and
frames as ws://, TLS 1.2 and 1.3 only, ALPN http/1.1, mutual TLS with a
runner-subject pattern, bounded handshakes (deadline, 32 KiB), SIGHUP
reloads, start-up errors, and the TLS counters of /stats and /metrics.

Certificates: tls_certs.py; client tools: tls_client.py. The slow-consumer
and zero-copy tests run over wss:// too (their modules), and so do the
terminal page (test_tls_browser.py), `relay attach` and loadgen
(test_tls_clients.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from types import SimpleNamespace

import pytest
from websockets.exceptions import InvalidStatus

from conftest import HOST, RELAY_BIN, free_port, relay_env
from relay_client import (
    INPUT, OUTPUT, browser_token, build_query, expect_refused, frame, new_pod,
    open_browser, open_runner, relay_path, run, runner_token, stats, ws_connect,
)
from tls_client import (
    BioClient, as_records, client_hello, describe_answer, failure_delta, failures_total, https_get, is_alert,
    is_server_hello, log_events, metric_samples, metric_value, metrics_text, negotiated_protocol, read_until_closed,
    s_client, send_quietly, server_certificate, still_open, tcp_connect, tls_connect, tls_stats, wait_log,
    wait_new_failures, wait_stderr, wait_tls_stats,
)

TLS_KEYS = {"connections", "handshakes", "resumed", "versions", "handshake_failures"}
# The relay closes a stalled client "at the deadline"; the tests wait much longer.
CLOSE_WAIT = 15.0


class Via:
    """The relay as a client with another TLS context sees it (another
    client certificate, another TLS version...)."""

    def __init__(self, relay, ctx: ssl.SSLContext):
        self.relay = relay
        self.host = relay.host
        self.port = relay.port
        self.client_ssl = ctx

    def url(self, path: str = "/") -> str:
        return f"https://{self.host}:{self.port}{path}"

    def ws_url(self, path: str = "/") -> str:
        return f"wss://{self.host}:{self.port}{path}"


@pytest.fixture
def tls_relay(start_relay, tls_certs):
    """start(*args, env=None, mtls=False, client=None) -> a relay with
    `--tls` (+ `--tls-client-ca` = the test CA with mtls); its client context
    trusts the CA and presents `client` (mtls: the runner-1 certificate)."""

    def start(*args: str, env: dict | None = None, mtls: bool = False, client=None, alpn=None):
        ca = tls_certs.ca.cert if mtls else None
        if mtls and client is None:
            client = tls_certs.runner
        ctx = tls_certs.client_context(client, alpn=alpn)
        return start_relay(*tls_certs.relay_args(client_ca=ca), *args, env=env, tls=ctx)

    return start


async def exchange(runner, browsers, tag: bytes) -> None:
    """One Output to every browser and one Input from each back, byte-exact."""
    out = frame(OUTPUT, tag + os.urandom(3000))
    await runner.send(out)
    for b in browsers:
        await b.recv_until(lambda t, p: frame(t, p) == out, what=f"output {tag!r}")
    for i, b in enumerate(browsers):
        typed = frame(INPUT, tag + b":%d:" % i + os.urandom(500))
        await b.send(typed)
        await runner.recv_until(lambda t, p: frame(t, p) == typed, what=f"input {tag!r} from {b.name}")


# ------------------------------------------------------------- the happy path


# The happy path, byte for byte over wss://, is test_relay_routing's exchange
# test, which runs over ws:// and wss://.


def test_connected_log_lines_name_transport_and_alpn(tls_relay, tls_certs):
    """The "runner connected" / "browser connected" lines of a TLS relay carry
    transport=<TLS version> and alpn=http/1.1 (clients offering h2 and
    http/1.1 to a relay with HTTP/2 off; with it on they would get h2, see
    test_http2.py); a TLS 1.2 browser is logged with transport=TLSv1.2. No
    peer= subject without client certificates."""
    relay = tls_relay("--http2", "off", alpn=["h2", "http/1.1"])
    tls12 = Via(relay, tls_certs.client_context(alpn=["h2", "http/1.1"], maximum=ssl.TLSVersion.TLSv1_2))

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        b13 = await open_browser(relay, pod, name="b13", user_id=1)
        b12 = await open_browser(tls12, pod, name="b12", user_id=2)
        await exchange(runner, [b13, b12], b"log")
        return pod

    pod = run(main(), timeout=30)
    r = wait_log(relay, lambda e: e.get("msg") == "runner connected" and e.get("pod") == pod,
                 what=f"'runner connected' line for {pod}")
    assert r.get("transport") == "TLSv1.3", r
    assert r.get("alpn") == "http/1.1", r
    assert not r.get("peer"), f"a peer subject without client certificates: {r}"
    browsers = []
    deadline = time.monotonic() + 5
    while len(browsers) < 2 and time.monotonic() < deadline:
        browsers = [e for e in log_events(relay.stderr()) if e.get("msg") == "browser connected" and e.get("pod") == pod]
        time.sleep(0.05)
    assert sorted(e.get("transport") for e in browsers) == ["TLSv1.2", "TLSv1.3"], browsers
    assert all(e.get("alpn") == "http/1.1" for e in browsers), browsers


def test_curl_and_https_admin_endpoints(tls_relay, tls_certs):
    """`curl --cacert CA https://127.0.0.1:PORT/health` gets 200 {"status":"ok"}
    over HTTP/2 when it offers h2 (its default: ALPN picks h2) and over
    HTTP/1.1 when it offers only http/1.1; /stats and /metrics answer over
    https; without the CA curl refuses the certificate (so the relay really
    presents the test CA's certificate)."""
    relay = tls_relay()
    base = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code} %{http_version}"]
    for extra, version in (([], "2"), (["--http2"], "2"), (["--http1.1"], "1.1")):
        proc = subprocess.run([*base, *extra, "--cacert", str(tls_certs.ca.cert), relay.url("/health")],
                              capture_output=True, text=True, timeout=20)
        assert proc.returncode == 0, f"curl {extra}: exit {proc.returncode}: {proc.stderr}"
        body, _, tail = proc.stdout.rpartition("\n")
        assert tail == f"200 {version}", f"curl {extra}: {proc.stdout!r}"
        assert json.loads(body) == {"status": "ok"}, body
    # localhost is in the certificate too.
    proc = subprocess.run([*base, "--cacert", str(tls_certs.ca.cert), f"https://localhost:{relay.port}/health",
                           "--resolve", f"localhost:{relay.port}:127.0.0.1"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0 and proc.stdout.endswith("200 2"), (proc.stdout, proc.stderr)
    proc = subprocess.run([*base, relay.url("/health")], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 60, f"curl without the CA: exit {proc.returncode} (60 = certificate refused): {proc.stderr}"

    with relay.urlopen("/stats") as resp:
        assert resp.status == 200 and "tls" in json.loads(resp.read())
    assert "relay_tls_connections" in metrics_text(relay)


def test_s_client_alpn_and_versions(tls_relay, tls_certs):
    """`openssl s_client`: offering h2,http/1.1 negotiates h2 over TLSv1.3
    with a verified chain, and http/1.1 alone gets http/1.1; no ALPN: the
    handshake works, no ALPN; with --http2 off, h2 alone gets no ALPN (and
    the handshake works, RFC 7301 §3.2); -tls1_2 works; -tls1_1 and -tls1
    (with a client that can speak them: SECLEVEL=0) are refused, and counted
    as handshake failures."""
    relay = tls_relay()
    ca = tls_certs.ca.cert

    p = s_client(relay, "-alpn", "h2,http/1.1", ca=ca)
    assert p.returncode == 0, p.output
    assert "ALPN protocol: h2" in p.output, p.output
    assert negotiated_protocol(p.output) == "TLSv1.3", p.output
    assert "Verify return code: 0 (ok)" in p.output, p.output

    p = s_client(relay, "-alpn", "http/1.1", ca=ca)
    assert p.returncode == 0 and "ALPN protocol: http/1.1" in p.output, p.output

    p = s_client(relay, ca=ca)
    assert p.returncode == 0 and negotiated_protocol(p.output) == "TLSv1.3", p.output
    assert "No ALPN negotiated" in p.output, p.output

    h1_only = tls_relay("--http2", "off")
    p = s_client(h1_only, "-alpn", "h2", ca=ca)
    assert p.returncode == 0 and negotiated_protocol(p.output) == "TLSv1.3", p.output
    assert "No ALPN negotiated" in p.output, p.output

    p = s_client(relay, "-tls1_2", "-alpn", "http/1.1", ca=ca)
    assert p.returncode == 0, p.output
    assert negotiated_protocol(p.output) == "TLSv1.2", p.output
    assert "ALPN protocol: http/1.1" in p.output, p.output

    for flag in ("-tls1_1", "-tls1"):
        before = tls_stats(relay)
        p = s_client(relay, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert negotiated_protocol(p.output) is None, f"{flag} was accepted:\n{p.output}"
        assert "no protocols available" not in p.output, f"the client could not offer {flag}:\n{p.output}"
        wait_new_failures(relay, before, what=f"s_client {flag}")
    assert relay.proc.poll() is None


def test_test_client_can_speak_tls11(tmp_path, tls_certs):
    """Control for the refusals above: against `openssl s_server` that allows
    TLS 1.1, the same s_client command does negotiate TLSv1.1 (so the relay,
    not the client, is what refuses it)."""
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", str(tls_certs.server.cert),
         "-key", str(tls_certs.server.key), "-cipher", "DEFAULT:@SECLEVEL=0", "-tls1_1", "-www", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = SimpleNamespace(host=HOST, port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            p = s_client(target, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
            if negotiated_protocol(p.output) == "TLSv1.1" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert negotiated_protocol(p.output) == "TLSv1.1", p.output
    finally:
        server.terminate()
        server.wait(timeout=5)


def test_min_version_13_from_the_environment(start_relay, tls_certs):
    """TLS_ENABLED=true, TLS_CERT_FILE, TLS_KEY_FILE, TLS_MIN_VERSION=1.3 (no
    flags): -tls1_3 works, -tls1_2 is refused and counted; a Python client
    capped at TLS 1.2 cannot get /health."""
    relay = start_relay(env={"TLS_ENABLED": "true", "TLS_CERT_FILE": str(tls_certs.server.cert),
                             "TLS_KEY_FILE": str(tls_certs.server.key), "TLS_MIN_VERSION": "1.3"},
                        tls=tls_certs.client_context())
    p = s_client(relay, "-tls1_3", ca=tls_certs.ca.cert)
    assert p.returncode == 0 and negotiated_protocol(p.output) == "TLSv1.3", p.output

    before = tls_stats(relay)
    p = s_client(relay, "-tls1_2", ca=tls_certs.ca.cert)
    assert negotiated_protocol(p.output) is None, f"TLS 1.2 accepted with TLS_MIN_VERSION=1.3:\n{p.output}"
    wait_new_failures(relay, before, what="TLS 1.2 below the minimum")

    status, _, err = https_get(relay, "/health", tls_certs.client_context(maximum=ssl.TLSVersion.TLSv1_2))
    assert status is None, f"a TLS 1.2 client got HTTP {status}"
    print(f"TLS 1.2 client: {err}")
    status, _, err = https_get(relay, "/health", tls_certs.client_context())
    assert status == 200, err


# ----------------------------------------------------------------- bad input


def test_plain_http_to_the_tls_port(tls_relay):
    """A plain HTTP request, and a plain ws:// upgrade, on the TLS port: no
    HTTP success (the connection is closed), counted as a handshake failure
    `http_request`; the relay serves https:// meanwhile and after."""
    relay = tls_relay()
    before = tls_stats(relay)
    sock = tcp_connect(relay)
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: {relay.host}:{relay.port}\r\n\r\n".encode())
    data, how = read_until_closed(sock, CLOSE_WAIT)
    sock.close()
    assert not data.startswith(b"HTTP/1.1 2"), f"plain HTTP was served: {data[:200]!r}"
    print(f"plain HTTP: {describe_answer(data)}, then {how}")
    delta = wait_new_failures(relay, before, what="plain HTTP")
    assert delta.get("http_request") == 1, f"plain HTTP counted as {delta}, expected http_request"

    async def plain_ws():
        plain = SimpleNamespace(host=relay.host, port=relay.port, client_ssl=None,
                                ws_url=lambda path: f"ws://{relay.host}:{relay.port}{path}")
        pod = new_pod()
        try:
            ws = await ws_connect(plain, relay_path("browser") + build_query(browser_token(pod)), open_timeout=CLOSE_WAIT)
        except Exception as e:  # noqa: BLE001 - any failure is a refusal
            return f"{type(e).__name__}: {e}"
        await ws.close()
        raise AssertionError("a plain ws:// upgrade succeeded on the TLS port")

    print(f"plain ws:// upgrade: {run(plain_ws(), timeout=CLOSE_WAIT + 5)}")
    status, body, err = https_get(relay, "/health", relay.client_ssl)
    assert status == 200 and json.loads(body) == {"status": "ok"}, (status, body, err)


def test_handshake_deadline(start_relay, tls_certs):
    """--handshake-timeout 2s. Three clients stall: one sends half of a real
    ClientHello, one sends nothing, one completes TLS but sends no request.
    While they stall, a runner and a browser connect over wss:// and exchange
    frames, and /health answers; the stalled clients are then closed
    (deadline), counted as `timeout`. A ClientHello cut in two writes with a
    short pause between them completes normally."""
    relay = start_relay(*tls_certs.relay_args(), "--handshake-timeout", "2s", tls=tls_certs.client_context())
    before = tls_stats(relay)

    partial = BioClient(relay, tls_certs.client_context())
    hello = partial.first_flight()
    assert len(hello) > 100, len(hello)
    partial.sock.sendall(hello[:len(hello) // 2])
    silent = tcp_connect(relay)
    idle = tls_connect(relay, tls_certs.client_context())

    async def meanwhile():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(relay, pod)
        await exchange(runner, [browser], b"while-stalled")
        status, _, err = await asyncio.to_thread(https_get, relay, "/health", relay.client_ssl)
        assert status == 200, err
        await browser.close()
        await runner.close()

    run(meanwhile(), timeout=20)
    assert still_open(partial.sock), "the half-ClientHello client was closed before the others were done"

    # A ClientHello in two writes completes.
    split = BioClient(relay, tls_certs.client_context())
    first = split.first_flight()
    split.sock.sendall(first[:40])
    time.sleep(0.3)
    split.sock.sendall(first[40:])
    split.finish_handshake()
    answer = split.request(f"GET /health HTTP/1.1\r\nHost: {relay.host}\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    split.close()

    data, how = read_until_closed(partial.sock, CLOSE_WAIT)
    assert not is_server_hello(data), "a ServerHello for half a ClientHello"
    print(f"half ClientHello: {describe_answer(data)}, then {how}")
    data, how = read_until_closed(silent, CLOSE_WAIT)
    print(f"silent client: {describe_answer(data)}, then {how}")
    idle.settimeout(CLOSE_WAIT)
    got = b""
    try:
        while chunk := idle.recv(65536):
            got += chunk
    except (ssl.SSLError, ConnectionResetError) as e:
        print(f"TLS client without a request: {type(e).__name__} {e}")
    except socket.timeout:
        raise AssertionError(f"a TLS client that sent no request was still open after {CLOSE_WAIT} s "
                             f"(handshake timeout 2 s); got {got[:200]!r}") from None
    assert not got or got.startswith(b"HTTP/1.1 408"), f"TLS client without a request got {got[:200]!r}"
    print(f"TLS client without a request: {got[:40]!r}, then closed")
    for s in (partial, silent, idle):
        s.close()

    delta = wait_new_failures(relay, before, what="stalled handshakes")
    assert delta.get("timeout", 0) >= 1, f"stalled handshakes counted as {delta}, expected timeout"
    assert relay.proc.poll() is None


GARBAGE = {
    # A handshake record holding a 60-byte "ClientHello" whose session id
    # length (255) overruns the message.
    "handshake-record-junk-body": bytes.fromhex("1603010040") + b"\x01\x00\x00\x3c" + b"\x03\x03" + bytes(32)
    + b"\xff" + bytes(25),
    # Application data before any handshake.
    "application-data-first": bytes.fromhex("1703030020") + os.urandom(32),
    # An alert as the first record.
    "alert-first": bytes.fromhex("15030300020228"),
    # A record header claiming 65535 bytes (more than TLS allows).
    "oversized-record-length": bytes.fromhex("160301ffff") + os.urandom(200),
    # A record header with an unknown content type.
    "unknown-content-type": bytes.fromhex("4203030010") + os.urandom(16),
    "ssh-banner": b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
}


def test_garbage_that_looks_like_tls(tls_relay):
    """Bytes shaped like TLS records but wrong: each connection is closed
    without a ServerHello and counted as a handshake failure; the relay keeps
    serving."""
    relay = tls_relay()
    for name, data in GARBAGE.items():
        before = tls_stats(relay)
        sock = tcp_connect(relay)
        sent = send_quietly(sock, data)
        answer, how = read_until_closed(sock, CLOSE_WAIT)
        sock.close()
        assert not is_server_hello(answer), f"{name}: answered with a ServerHello"
        print(f"{name}: {describe_answer(answer)}, then {how}" + (f" (send: {sent})" if sent else ""))
        wait_new_failures(relay, before, what=name)
        status, _, err = https_get(relay, "/health", relay.client_ssl)
        assert status == 200, f"after {name}: {err}"


def test_client_hello_cut_short_then_closed_is_peer_closed(tls_relay):
    """A client that sends half a ClientHello and closes: counted as
    `peer_closed`."""
    relay = tls_relay()
    before = tls_stats(relay)
    sock = tcp_connect(relay)
    sock.sendall(as_records(client_hello())[:80])
    time.sleep(0.1)
    sock.close()
    delta = wait_new_failures(relay, before, what="half a ClientHello, then FIN")
    assert delta.get("peer_closed") == 1, f"counted as {delta}, expected peer_closed"


@pytest.mark.parametrize("size", [16000, 16 * 1024 + 512], ids=["one-record", "two-records"])
def test_16k_client_hello_is_answered(tls_relay, size):
    """A hand-built ClientHello padded (extension 21) to ~16 KiB, in one
    record or split over two: the relay answers (ServerHello, or an alert)
    instead of hanging, and keeps serving."""
    relay = tls_relay()
    sock = tcp_connect(relay, timeout=10)
    sock.sendall(as_records(client_hello(size)))
    got = b""
    deadline = time.monotonic() + CLOSE_WAIT
    while len(got) < 5 + 4 and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    sock.close()
    print(f"{size}-byte ClientHello: {describe_answer(got)}")
    assert is_server_hello(got) or is_alert(got), f"no ServerHello or alert for a {size}-byte ClientHello: {got[:64]!r}"
    status, _, err = https_get(relay, "/health", relay.client_ssl)
    assert status == 200, err


@pytest.mark.parametrize("how", ["burst", "trickled"])
def test_more_than_32k_of_handshake_is_closed(tls_relay, how):
    """A 40 KiB ClientHello (padding extension, three records; plain OpenSSL
    answers it, see test_tls_bounds_control), sent in one write or trickled
    in 1 KiB writes: the relay closes the connection without answering it
    (no ServerHello: it must not process more than 32 KiB of handshake) and
    counts `handshake_too_large`; it keeps serving."""
    relay = tls_relay()
    before = tls_stats(relay)
    sock = tcp_connect(relay, timeout=10)
    data = as_records(client_hello(40 * 1024))
    if how == "burst":
        sent = send_quietly(sock, data)
    else:
        for i in range(0, len(data), 1024):
            if sent := send_quietly(sock, data[i:i + 1024]):
                sent += f" after {i} bytes"
                break
            time.sleep(0.002)
    answer, closed = read_until_closed(sock, CLOSE_WAIT)
    sock.close()
    print(f"40 KiB ClientHello ({how}): {describe_answer(answer)}, then {closed}" + (f" (send: {sent})" if sent else ""))
    delta = wait_new_failures(relay, before, what=f"40 KiB ClientHello ({how})")
    assert not is_server_hello(answer), \
        f"the relay answered a 40 KiB ClientHello ({describe_answer(answer)}) before closing (counted: {delta})"
    assert delta.get("handshake_too_large") == 1, f"counted as {delta}, expected handshake_too_large"
    status, _, err = https_get(relay, "/health", relay.client_ssl)
    assert status == 200, err


def test_tls_bounds_control(tmp_path, tls_certs):
    """Control for the two tests above: plain OpenSSL (`openssl s_server`)
    answers the hand-built 16 KiB and 40 KiB ClientHellos with a ServerHello,
    so they are well-formed and the relay's 32 KiB bound is what closes the
    second."""
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", str(tls_certs.server.cert),
         "-key", str(tls_certs.server.key), "-www", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = SimpleNamespace(host=HOST, port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                tcp_connect(target).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "openssl s_server did not start"
                time.sleep(0.05)
        for size in (16000, 16 * 1024 + 512, 40 * 1024):
            sock = tcp_connect(target)
            sock.sendall(as_records(client_hello(size)))
            sock.settimeout(10)
            got = b""
            while len(got) < 9:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
            sock.close()
            assert is_server_hello(got), f"s_server on a {size}-byte ClientHello: {describe_answer(got)}"
    finally:
        server.terminate()
        server.wait(timeout=5)


# ---------------------------------------------------------------- mutual TLS


@pytest.mark.parametrize("who", ["no-certificate", "other-ca", "expired"])
def test_mtls_refuses(tls_relay, tls_certs, who):
    """--tls-client-ca: a client without a certificate, with one from another
    CA (same subject), or with an expired one signed by the CA gets no HTTP
    answer and no WebSocket; counted as a handshake failure. The runner-1
    certificate works on the same relay."""
    relay = tls_relay(mtls=True)
    client = {"no-certificate": None, "other-ca": tls_certs.foreign, "expired": tls_certs.expired}[who]
    ctx = tls_certs.client_context(client)
    before = tls_stats(relay)
    status, _, err = https_get(relay, "/health", ctx)
    assert status is None, f"{who}: got HTTP {status}"
    print(f"{who}: {err}")
    delta = wait_new_failures(relay, before, what=who)
    assert any("certificate" in k or "unknown_ca" in k or "expired" in k for k in delta), \
        f"{who}: failure reasons {delta} name no certificate problem"

    async def upgrade():
        pod = new_pod()
        try:
            peer = await open_runner(Via(relay, ctx), pod)
        except Exception as e:  # noqa: BLE001 - any failure is a refusal
            return f"{type(e).__name__}: {e}"
        try:
            # TLS 1.3: the client may believe the handshake is done; the relay's
            # refusal then arrives as the first read.
            t, p = await peer.recv(timeout=3)
        except Exception as e:  # noqa: BLE001
            return f"after the upgrade: {type(e).__name__}: {e}"
        raise AssertionError(f"{who}: the runner upgrade succeeded and got {describe(t, p)}")

    print(f"{who} runner upgrade: {run(upgrade(), timeout=20)}")
    assert https_get(relay, "/health", relay.client_ssl)[0] == 200


def test_mtls_accepts_ca_signed_and_logs_peer(tls_relay, tls_certs):
    """--tls-client-ca: a runner and a browser with CA-signed certificates
    connect and exchange frames; the "runner connected" line carries
    peer=/CN=runner-1/O=mesh, transport and alpn=http/1.1; the handshake
    failure counters did not move."""
    relay = tls_relay(mtls=True, alpn=["http/1.1"])
    viewer = Via(relay, tls_certs.client_context(tls_certs.viewer, alpn=["http/1.1"]))
    before = tls_stats(relay)

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(viewer, pod)
        await exchange(runner, [browser], b"mtls")
        return pod

    pod = run(main(), timeout=30)
    r = wait_log(relay, lambda e: e.get("msg") == "runner connected" and e.get("pod") == pod,
                 what=f"'runner connected' line for {pod}")
    assert r.get("peer") == "/CN=runner-1/O=mesh", r
    assert r.get("transport", "").startswith("TLSv1."), r
    assert r.get("alpn") == "http/1.1", r
    b = wait_log(relay, lambda e: e.get("msg") == "browser connected" and e.get("pod") == pod,
                 what=f"'browser connected' line for {pod}")
    assert b.get("peer") == "/CN=viewer-1/O=mesh", b
    after = tls_stats(relay)
    assert failures_total(after) == failures_total(before), failure_delta(before, after)


def test_runner_subject_pattern(tls_relay, tls_certs):
    """--tls-runner-subject '/CN=runner-*/O=mesh': a runner presenting
    /CN=viewer-1/O=mesh (signed by the CA) is refused with HTTP 403; the
    same certificate may connect as a browser; /CN=runner-1/O=mesh may
    connect as the runner."""
    relay = tls_relay("--tls-runner-subject", "/CN=runner-*/O=mesh", mtls=True)
    viewer = Via(relay, tls_certs.client_context(tls_certs.viewer))

    async def main():
        pod = new_pod()
        await expect_refused(viewer, relay_path("runner") + build_query(runner_token(pod)), status=403)
        runner = await open_runner(relay, pod)
        browser = await open_browser(viewer, pod)
        await exchange(runner, [browser], b"subject")

    run(main(), timeout=30)


# ------------------------------------------------------------------ reloads


def _write(path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _wait_for_certificate(relay, ctx, der: bytes, timeout: float = 5.0) -> int:
    """Connects until a new connection gets `der`; then 6 more must too (every
    loop has the new context). Returns the number of connections it took."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        n += 1
        if server_certificate(relay, ctx) == der:
            break
        assert time.monotonic() < deadline, f"no new connection got the new certificate within {timeout} s ({n} tries)"
        time.sleep(0.05)
    for i in range(6):
        assert server_certificate(relay, ctx) == der, f"connection {i} after the switch got the old certificate"
    return n


def test_sighup_reloads_certificate(start_relay, tls_certs, tmp_path):
    """A wss:// runner and browser are streaming. The certificate and key
    files are replaced by the second certificate's and SIGHUP sent: `tls
    reloaded` is logged, new connections get relay-test-2's certificate, the
    open session goes on both ways. Then garbage in the certificate file and
    SIGHUP: `tls reload failed` naming the file; new connections still get
    relay-test-2's certificate; the session still goes on; the relay runs."""
    cert, key = tls_certs.copy_server_files(tmp_path / "live")
    ctx = tls_certs.client_context()
    relay = start_relay(*tls_certs.relay_args(cert=cert, key=key), tls=ctx)
    assert server_certificate(relay, ctx) == tls_certs.server.der()

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browser = await open_browser(relay, pod)
        await exchange(runner, [browser], b"before")

        _write(cert, tls_certs.server2.cert.read_bytes())
        _write(key, tls_certs.server2.key.read_bytes())
        mark = len(relay.stderr())
        relay.proc.send_signal(signal.SIGHUP)
        line = await asyncio.to_thread(wait_stderr, relay, "tls reloaded", mark)
        print(f"reload: {line}")
        tries = await asyncio.to_thread(_wait_for_certificate, relay, ctx, tls_certs.server2.der())
        print(f"the new certificate after {tries} connection(s)")
        await exchange(runner, [browser], b"after-reload")
        # A new wss session works with the new certificate.
        pod2 = new_pod()
        r2 = await open_runner(relay, pod2, name="runner2")
        b2 = await open_browser(relay, pod2, name="browser2")
        await exchange(r2, [b2], b"new-session")

        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        mark = len(relay.stderr())
        relay.proc.send_signal(signal.SIGHUP)
        line = await asyncio.to_thread(wait_stderr, relay, "tls reload failed", mark)
        print(f"failed reload: {line}")
        assert cert.name in line, f"the failed reload does not name {cert}: {line}"
        assert "tls reloaded" not in relay.stderr()[mark:], relay.stderr()[mark:]
        for _ in range(4):
            assert await asyncio.to_thread(server_certificate, relay, ctx) == tls_certs.server2.der(), \
                "after a failed reload a new connection did not get the last good certificate"
        await exchange(runner, [browser], b"after-failed-reload")
        await exchange(r2, [b2], b"after-failed-reload")
        assert relay.proc.poll() is None

    run(main(), timeout=60)


def test_sighup_reloads_client_ca(start_relay, tls_certs, tmp_path):
    """--tls-client-ca pointing at a copy of the other CA: runner-1 (signed by
    the test CA) is refused, the other CA's client accepted. The file is
    replaced by the test CA and SIGHUP sent: runner-1 is accepted, the other
    CA's client refused."""
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(tls_certs.other_ca.cert.read_bytes())
    foreign = tls_certs.client_context(tls_certs.foreign)
    runner = tls_certs.client_context(tls_certs.runner)
    relay = start_relay(*tls_certs.relay_args(client_ca=ca_file), tls=foreign)
    assert https_get(relay, "/health", runner)[0] is None, "runner-1 accepted by a relay trusting the other CA"

    _write(ca_file, tls_certs.ca.cert.read_bytes())
    mark = len(relay.stderr())
    relay.proc.send_signal(signal.SIGHUP)
    wait_stderr(relay, "tls reloaded", mark)
    deadline = time.monotonic() + 5
    while (status := https_get(relay, "/health", runner)[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 200, "runner-1 refused after the CA reload"
    assert https_get(relay, "/health", foreign)[0] is None, "the other CA's client accepted after the CA reload"


# ----------------------------------------------------------- start-up errors


def _startup_cases(c, d):
    garbage = d / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    junk = d / "junk.pem"
    junk.write_bytes(os.urandom(300))
    missing = d / "missing" / "nowhere.pem"
    cert, key, ca = str(c.server.cert), str(c.server.key), str(c.ca.cert)
    return {
        # name: (args, env, settings (any may be named), path that must be named or None)
        "missing-cert": (["--tls", "--tls-cert", str(missing), "--tls-key", key], {}, ["tls-cert", "TLS_CERT_FILE"], missing),
        "junk-cert": (["--tls", "--tls-cert", str(junk), "--tls-key", key], {}, ["tls-cert", "TLS_CERT_FILE"], junk),
        "missing-key": (["--tls", "--tls-cert", cert, "--tls-key", str(missing)], {}, ["tls-key", "TLS_KEY_FILE"], missing),
        "bad-key": (["--tls", "--tls-cert", cert, "--tls-key", str(garbage)], {}, ["tls-key", "TLS_KEY_FILE"], garbage),
        "key-of-another-cert": (["--tls", "--tls-cert", cert, "--tls-key", str(c.server2.key)], {},
                                ["tls-key", "TLS_KEY_FILE", "tls-cert", "TLS_CERT_FILE"], None),
        "missing-client-ca": (["--tls", "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(missing)], {},
                              ["tls-client-ca", "TLS_CLIENT_CA_FILE"], missing),
        "junk-client-ca": (["--tls", "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(junk)], {},
                           ["tls-client-ca", "TLS_CLIENT_CA_FILE"], junk),
        "tls-without-cert-and-key": (["--tls"], {}, ["tls-cert", "TLS_CERT_FILE", "tls-key", "TLS_KEY_FILE"], None),
        "tls-without-key": (["--tls", "--tls-cert", cert], {}, ["tls-key", "TLS_KEY_FILE"], None),
        "tls-without-cert": (["--tls", "--tls-key", key], {}, ["tls-cert", "TLS_CERT_FILE"], None),
        "env-missing-cert": ([], {"TLS_ENABLED": "true", "TLS_CERT_FILE": str(missing), "TLS_KEY_FILE": key},
                             ["tls-cert", "TLS_CERT_FILE"], missing),
        "min-version-1.1": (["--tls", "--tls-cert", cert, "--tls-key", key, "--tls-min-version", "1.1"], {},
                            ["tls-min-version", "TLS_MIN_VERSION"], None),
    }


STARTUP_CASES = ["missing-cert", "junk-cert", "missing-key", "bad-key", "key-of-another-cert", "missing-client-ca",
                 "junk-client-ca", "tls-without-cert-and-key", "tls-without-key", "tls-without-cert",
                 "env-missing-cert", "min-version-1.1"]


@pytest.mark.parametrize("case", STARTUP_CASES)
def test_startup_errors(tls_certs, tmp_path, case):
    """A missing, unreadable or wrong certificate, key or CA file, --tls
    without a certificate or key, or a TLS minimum below 1.2: the relay exits
    non-zero (without serving), and stderr names the setting and the file."""
    args, env, settings, path = _startup_cases(tls_certs, tmp_path)[case]
    port = free_port()
    proc = subprocess.run([str(RELAY_BIN), "--host", HOST, "--port", str(port), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=relay_env(env), timeout=10)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{case}: exit 0\n{err}"
    assert any(s in err for s in settings), f"{case}: the message names none of {settings}:\n{err}"
    if path is not None:
        assert str(path) in err, f"{case}: the message does not name {path}:\n{err}"
    print(f"{case}: exit {proc.returncode}: {err.strip()[:300]}")


# ------------------------------------------------------------------ counters


def test_stats_and_metrics_count_tls(tls_relay, tls_certs):
    """/stats "tls" and /metrics relay_tls_*: the connections gauge follows
    open TLS connections (up by 4, back down); handshakes grow with them and
    equal the sum of versions (TLSv1.3 and TLSv1.2 both counted); resumed
    counts the resumptions the clients saw; a plain HTTP request adds
    handshake_failures{http_request}; /metrics agrees with /stats."""
    relay = tls_relay()
    ctx12 = tls_certs.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    s = stats(relay)
    assert TLS_KEYS <= set(s["tls"]), s
    t = s["tls"]
    assert all(type(t[k]) is int for k in ("connections", "handshakes", "resumed")), t
    assert isinstance(t["versions"], dict) and isinstance(t["handshake_failures"], dict), t

    # A baseline: the gauge (it may count the /stats connection itself) reads
    # the same twice in a row (earlier probes' connections are gone).
    base = tls_stats(relay)
    deadline = time.monotonic() + 5
    while True:
        time.sleep(0.1)
        again = tls_stats(relay)
        if again["connections"] == base["connections"] or time.monotonic() > deadline:
            break
        base = again
    assert again["connections"] == base["connections"], f"the connections gauge does not settle: {base} {again}"
    base = again

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        browsers = [await open_browser(relay, pod, user_id=10 + i, name=f"b{i}") for i in range(2)]
        held = await asyncio.to_thread(tls_connect, relay, ctx12)
        up = await asyncio.to_thread(
            wait_tls_stats, relay, lambda x: x["connections"] == base["connections"] + 4, 5.0,
            f"connections = {base['connections']} + 4")
        assert held.version() == "TLSv1.2"
        assert up["handshakes"] >= base["handshakes"] + 4, (base, up)
        assert up["versions"].get("TLSv1.2", 0) >= base["versions"].get("TLSv1.2", 0) + 1, (base, up)
        assert up["versions"].get("TLSv1.3", 0) >= base["versions"].get("TLSv1.3", 0) + 3, (base, up)
        assert sum(up["versions"].values()) == up["handshakes"], f"versions do not add up to handshakes: {up}"
        text = await asyncio.to_thread(metrics_text, relay)
        gauge = metric_value(text, "relay_tls_connections")
        assert gauge is not None and gauge >= 4, f"relay_tls_connections = {gauge}"
        v13 = metric_value(text, "relay_tls_handshakes_total", version="TLSv1.3")
        v12 = metric_value(text, "relay_tls_handshakes_total", version="TLSv1.2")
        assert v13 is not None and v13 >= up["versions"]["TLSv1.3"], (v13, up)
        assert v12 is not None and v12 >= up["versions"]["TLSv1.2"], (v12, up)
        held.close()
        for b in browsers:
            await b.close()
        await runner.close()
        await asyncio.to_thread(wait_tls_stats, relay, lambda x: x["connections"] == base["connections"], 5.0,
                                f"connections back to {base['connections']}")

    run(main(), timeout=30)

    # Resumption (TLS 1.2 session, then TLS 1.3 ticket): the counter follows what clients saw.
    before = tls_stats(relay)
    reused = 0
    for ctx in (ctx12, tls_certs.client_context()):
        first = tls_connect(relay, ctx)
        first.sendall(f"GET /health HTTP/1.1\r\nHost: {relay.host}\r\n\r\n".encode())
        first.recv(4096)  # the response (and, TLS 1.3, the session tickets before it)
        session = first.session
        first.close()
        again = tls_connect(relay, ctx, session=session)
        print(f"{again.version()}: resumed={again.session_reused}")
        reused += again.session_reused
        again.close()
    after = wait_tls_stats(relay, lambda x: x["handshakes"] >= before["handshakes"] + 4, what="4 more handshakes")
    assert after["resumed"] - before["resumed"] == reused, f"clients resumed {reused} sessions; /stats: {before} -> {after}"

    # A failure: plain HTTP.
    before = tls_stats(relay)
    sock = tcp_connect(relay)
    sock.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until_closed(sock, CLOSE_WAIT)
    sock.close()
    delta = wait_new_failures(relay, before, what="plain HTTP")
    assert delta == {"http_request": 1}, delta
    text = metrics_text(relay)
    now = tls_stats(relay)
    for reason, n in now["handshake_failures"].items():
        m = metric_value(text, "relay_tls_handshake_failures_total", reason=reason)
        assert (m or 0) == n, f"/metrics says {m} failures '{reason}', /stats {n}"
    assert now["resumed"] >= 0 and metric_samples(text, "relay_tls_handshakes_total"), text[:2000]


def test_plain_relay_has_no_tls_stats(relay):
    """Without --tls, /stats has no "tls" object."""
    s = stats(relay)
    assert "tls" not in s, s


# --------------------------------------------------------------- refusals


def test_wss_tokens_are_still_checked(tls_relay):
    """The same token rules over wss://: a bad token is refused with 401."""
    relay = tls_relay()

    async def main():
        pod = new_pod()
        await expect_refused(relay, relay_path("browser") + build_query("not-a-token"), status=401)
        try:
            await open_browser(relay, pod, secret="wrong-secret")
        except InvalidStatus as e:
            assert e.response.status_code == 401, e.response.status_code
        else:
            raise AssertionError("a token signed with another secret was accepted over wss")

    run(main(), timeout=20)
