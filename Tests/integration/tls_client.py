"""Client-side tools for the TLS tests: raw TCP probes, a hand-built
ClientHello, a handshake driven byte by byte through ssl.MemoryBIO, the
`openssl s_client` and `curl` command lines, /stats and /metrics TLS
counters, and the relay's logfmt lines."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time

from relay_client import stats

# ------------------------------------------------------------ raw TCP probes


def tcp_connect(relay, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((relay.host, relay.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_quietly(sock: socket.socket, data: bytes) -> str | None:
    """sendall that reports (instead of raising) the relay closing on us."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError) as e:
        return type(e).__name__
    return None


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Everything the relay sends until it closes the connection: (bytes,
    "eof" | "reset"). AssertionError if it is still open after `timeout`."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the relay kept the connection open for {timeout} s; "
                                 f"it sent {len(data)} bytes: {bytes(data[:64]).hex()}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return bytes(data), "reset"
        if not chunk:
            return bytes(data), "eof"
        data += chunk


def still_open(sock: socket.socket) -> bool:
    """True if the relay has neither closed nor reset the connection."""
    sock.setblocking(False)
    try:
        chunk = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return bool(chunk)


# ----------------------------------------------------------- TLS records

HANDSHAKE = 0x16
ALERT = 0x15
APPLICATION_DATA = 0x17
CHANGE_CIPHER_SPEC = 0x14
SERVER_HELLO = 0x02


def tls_records(data: bytes) -> list[tuple[int, bytes]]:
    """(content type, fragment) of each complete record at the start of
    `data` (a trailing partial record is left out)."""
    out = []
    i = 0
    while i + 5 <= len(data):
        ct, n = data[i], struct.unpack(">H", data[i + 3:i + 5])[0]
        if i + 5 + n > len(data):
            break
        out.append((ct, data[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def describe_answer(data: bytes) -> str:
    recs = tls_records(data)
    if not data:
        return "nothing"
    if not recs:
        return f"{len(data)} bytes, not TLS records: {data[:32]!r}"
    parts = []
    for ct, frag in recs[:4]:
        if ct == ALERT and len(frag) >= 2:
            parts.append(f"alert(level {frag[0]}, description {frag[1]})")
        elif ct == HANDSHAKE and frag:
            parts.append(f"handshake(type {frag[0]})")
        else:
            parts.append(f"record(type {ct}, {len(frag)} B)")
    return ", ".join(parts)


def is_server_hello(data: bytes) -> bool:
    recs = tls_records(data)
    return bool(recs) and recs[0][0] == HANDSHAKE and recs[0][1][:1] == bytes([SERVER_HELLO])


def is_alert(data: bytes) -> bool:
    recs = tls_records(data)
    return bool(recs) and recs[0][0] == ALERT


def _ext(t: int, data: bytes) -> bytes:
    return struct.pack(">HH", t, len(data)) + data


def client_hello(total_len: int | None = None) -> bytes:
    """A ClientHello handshake message (type, 3-byte length, body) offering
    TLS 1.3 and 1.2, x25519/P-256 and ALPN http/1.1, which OpenSSL answers
    with a ServerHello. With `total_len`, a padding extension (21, RFC 7685)
    makes the whole message exactly that many bytes."""
    body = b"\x03\x03" + os.urandom(32) + bytes([32]) + os.urandom(32)
    suites = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02C, 0xC02F, 0xC030]
    body += struct.pack(">H", 2 * len(suites)) + b"".join(struct.pack(">H", s) for s in suites)
    body += b"\x01\x00"  # compression: null
    exts = _ext(10, struct.pack(">HHH", 4, 0x001D, 0x0017))            # supported_groups
    exts += _ext(11, b"\x01\x00")                                      # ec_point_formats
    sigs = [0x0403, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0503]
    exts += _ext(13, struct.pack(">H", 2 * len(sigs)) + b"".join(struct.pack(">H", s) for s in sigs))
    exts += _ext(43, b"\x04\x03\x04\x03\x03")                           # supported_versions 1.3, 1.2
    exts += _ext(45, b"\x01\x01")                                      # psk_key_exchange_modes
    share = struct.pack(">HH", 0x001D, 32) + os.urandom(32)
    exts += _ext(51, struct.pack(">H", len(share)) + share)            # key_share x25519
    alpn = b"\x08http/1.1"
    exts += _ext(16, struct.pack(">H", len(alpn)) + alpn)
    if total_len is not None:
        pad = total_len - (4 + len(body) + 2 + len(exts) + 4)
        assert pad >= 0, f"a ClientHello cannot be as small as {total_len} bytes"
        exts += _ext(21, bytes(pad))
    body += struct.pack(">H", len(exts)) + exts
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    if total_len is not None:
        assert len(msg) == total_len
    return msg


def as_records(msg: bytes, content_type: int = HANDSHAKE, max_fragment: int = 16384) -> bytes:
    """`msg` in TLS records of at most `max_fragment` bytes (legacy version 3.1)."""
    return b"".join(
        bytes([content_type, 3, 1]) + struct.pack(">H", len(msg[i:i + max_fragment])) + msg[i:i + max_fragment]
        for i in range(0, len(msg), max_fragment)
    )


# ----------------------------------------- a handshake through MemoryBIO


class BioClient:
    """A TLS client whose every byte goes through this object (ssl.MemoryBIO
    over a plain socket): the test decides how the ClientHello is cut."""

    def __init__(self, relay, ctx: ssl.SSLContext, timeout: float = 5.0):
        self.sock = tcp_connect(relay, timeout)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=relay.host)
        self.timeout = timeout

    def first_flight(self) -> bytes:
        """The ClientHello bytes (not sent yet)."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def _pump_in(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the relay")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.incoming.write_eof()
        else:
            self.incoming.write(chunk)

    def _flush(self) -> None:
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)

    def finish_handshake(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._pump_in(deadline)

    def request(self, raw: bytes) -> bytes:
        """Sends `raw` (an HTTP request) and reads until the relay closes or a
        complete response with Content-Length has arrived."""
        self.tls.write(raw)
        self._flush()
        got = bytearray()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                got += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pump_in(deadline)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return bytes(got)
            head, sep, rest = bytes(got).partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    return bytes(got)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------- TLS connections


def tls_connect(relay, ctx: ssl.SSLContext, timeout: float = 5.0,
                session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    sock = tcp_connect(relay, timeout)
    try:
        return ctx.wrap_socket(sock, server_hostname=relay.host, session=session)
    except BaseException:
        sock.close()
        raise


def server_certificate(relay, ctx: ssl.SSLContext) -> bytes:
    """The DER certificate a new TLS connection is given."""
    with tls_connect(relay, ctx) as t:
        return t.getpeercert(binary_form=True)


def https_get(relay, path: str, ctx: ssl.SSLContext, timeout: float = 5.0) -> tuple[int | None, bytes, str]:
    """GET `path` on a new TLS connection made with `ctx`: (status, body, "")
    or (None, b"", what went wrong) when the relay refused the connection."""
    try:
        with tls_connect(relay, ctx, timeout) as t:
            t.sendall(f"GET {path} HTTP/1.1\r\nHost: {relay.host}:{relay.port}\r\nConnection: close\r\n\r\n".encode())
            data = bytearray()
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (ssl.SSLError, ConnectionError, socket.timeout, OSError) as e:
        return None, b"", f"{type(e).__name__}: {e}"
    if not data:
        return None, b"", "closed without a response"
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, ""


# ---------------------------------------------------- openssl s_client, curl


def s_client(relay, *args: str, ca=None, timeout: float = 20) -> subprocess.CompletedProcess:
    """`openssl s_client -connect host:port …` with stdin closed (it
    handshakes, prints the session, and leaves)."""
    argv = ["openssl", "s_client", "-connect", f"{relay.host}:{relay.port}"]
    if ca is not None:
        argv += ["-CAfile", str(ca), "-verify_return_error"]
    argv += list(args)
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


def negotiated_protocol(out: str) -> str | None:
    """The TLS version s_client agreed on (None: no cipher agreed). From the
    session block's `Protocol  : …` when printed (TLS 1.3 sessions often are
    not, with stdin closed), else from `New, TLSv1.3, Cipher is …`."""
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    if not m or m.group(2) == "(NONE)":
        return None
    p = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
    return p.group(1) if p else m.group(1)


# ---------------------------------------------------------- TLS counters


def tls_stats(relay) -> dict:
    s = stats(relay)
    assert "tls" in s, f"/stats of a TLS relay has no \"tls\" object: {s}"
    return s["tls"]


def failures_total(t: dict) -> int:
    return sum(t["handshake_failures"].values())


def failure_delta(before: dict, after: dict) -> dict[str, int]:
    b, a = before["handshake_failures"], after["handshake_failures"]
    return {k: a.get(k, 0) - b.get(k, 0) for k in sorted(set(a) | set(b)) if a.get(k, 0) != b.get(k, 0)}


def wait_tls_stats(relay, pred, timeout: float = 5.0, what: str = "TLS counters") -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = tls_stats(relay)
        if pred(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"/stats never showed {what} within {timeout} s; last tls: {last}")


def wait_new_failures(relay, before: dict, timeout: float = 5.0, what: str = "a handshake failure") -> dict[str, int]:
    """Waits until the failure counters have moved past `before`; returns
    the reasons that moved (printed too)."""
    after = wait_tls_stats(relay, lambda t: failures_total(t) > failures_total(before), timeout, what)
    delta = failure_delta(before, after)
    print(f"handshake failures counted for {what}: {delta}")
    return delta


def metrics_text(relay) -> str:
    with relay.urlopen("/metrics") as resp:
        assert resp.status == 200
        return resp.read().decode()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)", re.M)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of `name` in Prometheus text."""
    return [(dict(_LABEL.findall(labels)), float(v)) for n, labels, v in _SAMPLE.findall(text) if n == name]


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The sample of `name` whose labels include `labels` (None if absent)."""
    for got, v in metric_samples(text, name):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


# ---------------------------------------------------------- relay's logs

_LOGFMT = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def log_events(text: str) -> list[dict[str, str]]:
    """The relay's logfmt lines as dicts (quoted values unescaped)."""
    events = []
    for line in text.splitlines():
        fields = {}
        for k, v in _LOGFMT.findall(line):
            if v.startswith('"'):
                try:
                    v = json.loads(v)
                except ValueError:
                    v = v[1:-1]
            fields[k] = v
        if fields:
            events.append(fields)
    return events


def wait_log(relay, pred, timeout: float = 5.0, what: str = "a log line") -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        for ev in log_events(relay.stderr()):
            if pred(ev):
                return ev
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} on the relay's stderr within {timeout} s; "
                                 f"last lines:\n{relay.stderr()[-3000:]}")
        time.sleep(0.05)


def wait_stderr(relay, needle: str, after: int = 0, timeout: float = 5.0) -> str:
    """The first stderr line (past character `after`) containing `needle`."""
    deadline = time.monotonic() + timeout
    while True:
        text = relay.stderr()[after:]
        for line in text.splitlines():
            if needle in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no line containing {needle!r} on the relay's stderr within {timeout} s; "
                                 f"new lines:\n{text[-3000:]}")
        time.sleep(0.05)
