"""Client-side helpers for the relay integration tests (docs/protocol.md).

- tokens: HS256/384/512 JWTs minted with hmac/hashlib (no PyJWT), plus the
  malformed ones the relay must refuse;
- frames: the `[type u8][payload]` envelope, the extension payloads;
- `Peer`: a runner or browser on top of the `websockets` asyncio client, with
  frame-level receive helpers bounded by timeouts;
- `RawWebSocket`: a minimal blocking RFC 6455 client on a plain socket, for the
  peers that never read or never answer pings (the `websockets` client always
  does both behind the test's back);
- `run`: asyncio.run with an overall deadline (there is no pytest-asyncio).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import TEST_JWT_SECRET

ISSUER = "agentsmesh-relay"

# ---------------------------------------------------------------- frame types

SNAPSHOT = 0x01
OUTPUT = 0x02
INPUT = 0x03
RESIZE = 0x04
PING = 0x05
PONG = 0x06
CONTROL = 0x07
RUNNER_DISCONNECTED = 0x08
RUNNER_RECONNECTED = 0x09
RESYNC = 0x0A
ACP_EVENT = 0x0B
ACP_COMMAND = 0x0C
ACP_SNAPSHOT = 0x0D
POSITION = 0x20
GAP = 0x21
LAGGED = 0x22
PRESENCE = 0x23
ERROR = 0x24

REPLAYABLE = (OUTPUT, CONTROL, ACP_EVENT)
EXTENSION_TYPES = range(0x20, 0x25)  # relay-made, ext clients only

NAMES = {
    v: k
    for k, v in dict(
        SNAPSHOT=SNAPSHOT, OUTPUT=OUTPUT, INPUT=INPUT, RESIZE=RESIZE, PING=PING, PONG=PONG,
        CONTROL=CONTROL, RUNNER_DISCONNECTED=RUNNER_DISCONNECTED,
        RUNNER_RECONNECTED=RUNNER_RECONNECTED, RESYNC=RESYNC, ACP_EVENT=ACP_EVENT,
        ACP_COMMAND=ACP_COMMAND, ACP_SNAPSHOT=ACP_SNAPSHOT, POSITION=POSITION, GAP=GAP,
        LAGGED=LAGGED, PRESENCE=PRESENCE, ERROR=ERROR,
    ).items()
}


def type_name(t: int) -> str:
    return NAMES.get(t, f"0x{t:02x}")


def frame(t: int, payload: bytes = b"") -> bytes:
    return bytes([t]) + payload


def split(message: bytes) -> tuple[int, bytes]:
    assert len(message) >= 1, "empty relay message (every message needs a type byte)"
    return message[0], message[1:]


def describe(t: int, payload: bytes) -> str:
    """Short human form of a frame for assertion messages."""
    head = payload[:24]
    more = f"...({len(payload)} B)" if len(payload) > 24 else ""
    return f"{type_name(t)}[{head!r}{more}]"


def resize(cols: int, rows: int) -> bytes:
    return frame(RESIZE, struct.pack(">HH", cols, rows))


def snapshot(tag: str, cols: int = 80, rows: int = 24) -> bytes:
    body = {
        "cols": cols, "rows": rows, "lines": [f"snapshot {tag}"],
        "serialized_content": f"\x1b[2J{tag}", "cursor_x": 0, "cursor_y": 0,
        "cursor_visible": True, "is_alt_screen": False,
    }
    return frame(SNAPSHOT, json.dumps(body).encode())


def control(obj) -> bytes:
    return frame(CONTROL, json.dumps(obj).encode())


def parse_position(payload: bytes) -> tuple[int, int]:
    assert len(payload) == 12, f"Position payload must be 12 bytes, got {len(payload)}: {payload!r}"
    return struct.unpack(">IQ", payload)


def parse_gap(payload: bytes) -> tuple[int, int, int]:
    assert len(payload) == 20, f"Gap payload must be 20 bytes, got {len(payload)}: {payload!r}"
    return struct.unpack(">IQQ", payload)


def parse_lagged(payload: bytes) -> int:
    assert len(payload) == 8, f"Lagged payload must be 8 bytes, got {len(payload)}: {payload!r}"
    return struct.unpack(">Q", payload)[0]


def parse_error(payload: bytes) -> tuple[int, str]:
    assert len(payload) >= 2, f"Error payload too short: {payload!r}"
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode("utf-8")


def parse_presence(payload: bytes) -> dict:
    obj = json.loads(payload)
    assert isinstance(obj.get("browsers"), int) and isinstance(obj.get("writers"), int), obj
    return obj


# -------------------------------------------------------------------- tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def encode_jwt(header: dict, claims: dict, secret: str | bytes | None = TEST_JWT_SECRET,
               sign_as: str | None = None) -> str:
    """JWS compact form. Signed with HMAC `sign_as` (default: header["alg"]);
    `secret=None` gives an empty signature."""
    signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}"
    if secret is None:
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    digest = _HASHES[sign_as or header["alg"]]
    sig = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(sig)}"


def claims(pod_key: str, *, user_id: int, runner_id: int = 7, org_id: int = 3,
           ttl: int = 3600, iat: int | None = None, iss: str | None = ISSUER,
           scope: str | None = None, role: str | None = None, **extra) -> dict:
    now = int(time.time())
    c = {
        "pod_key": pod_key, "runner_id": runner_id, "user_id": user_id, "org_id": org_id,
        "exp": now + ttl, "iat": now if iat is None else iat, "sub": pod_key,
    }
    if iss is not None:
        c["iss"] = iss
    if scope is not None:
        c["scope"] = scope
    if role is not None:
        c["role"] = role
    c.update(extra)
    return c


def mint(pod_key: str, *, user_id: int, alg: str = "HS256",
         secret: str | bytes = TEST_JWT_SECRET, **kw) -> str:
    return encode_jwt({"alg": alg, "typ": "JWT"}, claims(pod_key, user_id=user_id, **kw), secret)


def runner_token(pod_key: str, **kw) -> str:
    return mint(pod_key, user_id=0, **kw)


def browser_token(pod_key: str, user_id: int = 1001, **kw) -> str:
    return mint(pod_key, user_id=user_id, **kw)


def tamper_payload(token: str, **changes) -> str:
    """Same header and signature, different claims: the signature no longer matches."""
    h, p, s = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    body.update(changes)
    return f"{h}.{b64url(_json(body))}.{s}"


def tamper_signature(token: str) -> str:
    """Flip bits in the first signature byte (the first base64url character
    carries 6 full bits, so the decoded signature really changes)."""
    h, p, s = token.split(".")
    first = "A" if s[0] != "A" else "B"
    return f"{h}.{p}.{first}{s[1:]}"


def new_pod() -> str:
    return f"pod-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------- clients


def relay_path(role: str, prefixed: bool = False) -> str:
    assert role in ("runner", "browser")
    return ("/relay" if prefixed else "") + f"/{role}/relay"


def build_query(token: str | None = None, *, ext: bool = False, epoch: int | None = None,
                seq: int | None = None) -> str:
    q: list[tuple[str, str]] = []
    if token is not None:
        q.append(("token", token))
    if ext:
        q.append(("ext", "1"))
    if epoch is not None:
        q.append(("epoch", str(epoch)))
    if seq is not None:
        q.append(("seq", str(seq)))
    return ("?" + urllib.parse.urlencode(q)) if q else ""


async def ws_connect(relay, path: str, *, headers: dict | None = None,
                     open_timeout: float = 5.0, max_queue: int | None = 4096) -> ClientConnection:
    """A `websockets` client with no compression, no client pings, no proxy,
    no size limit (the relay's 4 MiB limit is what matters); over TLS with
    the relay's client context when it has one."""
    tls = {"ssl": relay.client_ssl} if getattr(relay, "client_ssl", None) is not None else {}
    return await connect(
        relay.ws_url(path),
        **tls,
        additional_headers=headers,
        compression=None,
        max_size=None,
        max_queue=max_queue,
        ping_interval=None,
        open_timeout=open_timeout,
        close_timeout=2,
        proxy=None,
    )


class UnexpectedFrame(AssertionError):
    pass


class Peer:
    """One runner or browser connection, speaking frames.

    Browsers without `ext` must never receive an extension type (>= 0x20):
    every receive checks it. Presence frames (0x23) arrive whenever browsers
    join or leave; ext browsers file them in `presence` and skip them unless
    asked for.
    """

    def __init__(self, ws: ClientConnection, name: str, role: str, ext: bool):
        self.ws = ws
        self.name = name
        self.role = role
        self.ext = ext
        self.presence: list[dict] = []
        self.log: list[tuple[int, bytes]] = []  # every frame received, for messages

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def send_frame(self, t: int, payload: bytes = b"") -> None:
        await self.ws.send(frame(t, payload))

    async def recv_raw(self, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.name}: nothing received within {timeout} s; "
                f"last frames: {self.tail_log()}"
            ) from None
        except ConnectionClosed as e:
            raise AssertionError(
                f"{self.name}: connection closed ({close_info(e)}) while waiting for a frame; "
                f"last frames: {self.tail_log()}"
            ) from None
        assert isinstance(msg, bytes), f"{self.name}: relay sent a text message {msg!r} (must be binary)"
        t, payload = split(msg)
        self.log.append((t, payload))
        if self.role == "browser" and not self.ext:
            assert t not in EXTENSION_TYPES, f"{self.name}: non-ext browser received extension frame {describe(t, payload)}"
        return t, payload

    async def recv(self, timeout: float = 5.0, *, skip_presence: bool = True) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            t, payload = await self.recv_raw(max(0.01, deadline - time.monotonic()))
            if t == PRESENCE and skip_presence and self.ext:
                self.presence.append(parse_presence(payload))
                continue
            return t, payload

    async def expect(self, t: int, payload: bytes | None = None, timeout: float = 5.0) -> bytes:
        got_t, got_p = await self.recv(timeout)
        if got_t != t or (payload is not None and got_p != payload):
            want = describe(t, payload) if payload is not None else type_name(t)
            raise UnexpectedFrame(f"{self.name}: expected {want}, got {describe(got_t, got_p)}")
        return got_p

    async def expect_message(self, message: bytes, timeout: float = 5.0) -> None:
        await self.expect(message[0], message[1:], timeout)

    async def recv_until(self, pred, timeout: float = 5.0, what: str = "frame") -> tuple[list, tuple[int, bytes]]:
        """Frames until one satisfies pred(t, payload): (skipped, match)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {what} within {timeout} s; skipped {[describe(*f) for f in skipped[-8:]]}")
            t, p = await self.recv(remaining)
            if pred(t, p):
                return skipped, (t, p)
            skipped.append((t, p))

    async def expect_closed(self, timeout: float = 5.0) -> tuple[int | None, str, list]:
        """Reads until the relay closes; returns (code, reason, frames read meanwhile)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: still open after {timeout} s; read {[describe(*f) for f in frames[-8:]]}")
            try:
                msg = await asyncio.wait_for(self.ws.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            except ConnectionClosed as e:
                rcvd = e.rcvd
                return (rcvd.code if rcvd else None), (rcvd.reason if rcvd else ""), frames
            if isinstance(msg, bytes) and msg:
                frames.append(split(msg))
            else:
                frames.append((-1, msg))

    async def sync(self, timeout: float = 5.0) -> None:
        """A WebSocket ping round trip: once the relay has answered, it has read
        everything this peer sent before it."""
        waiter = await self.ws.ping()
        await asyncio.wait_for(waiter, timeout)

    async def close(self) -> None:
        await self.ws.close()

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.ws.transport.abort()

    def tail_log(self, n: int = 6) -> list[str]:
        return [describe(t, p) for t, p in self.log[-n:]]


def close_info(e: ConnectionClosed) -> str:
    r = e.rcvd
    return f"code={r.code} reason={r.reason!r}" if r else "no close frame"


async def open_runner(relay, pod: str, *, token: str | None = None, prefixed: bool = False,
                      bearer: bool = False, name: str = "runner", **tok) -> Peer:
    token = token or runner_token(pod, **tok)
    path = relay_path("runner", prefixed)
    if bearer:
        ws = await ws_connect(relay, path, headers={"Authorization": f"Bearer {token}"})
    else:
        ws = await ws_connect(relay, path + build_query(token))
    return Peer(ws, name, "runner", ext=False)


async def open_browser(relay, pod: str, *, token: str | None = None, ext: bool = False,
                       epoch: int | None = None, seq: int | None = None, prefixed: bool = False,
                       bearer: bool = False, name: str = "browser", user_id: int = 1001,
                       max_queue: int | None = 4096, **tok) -> Peer:
    token = token or browser_token(pod, user_id=user_id, **tok)
    path = relay_path("browser", prefixed)
    if bearer:
        ws = await ws_connect(relay, path + build_query(None, ext=ext, epoch=epoch, seq=seq),
                              headers={"Authorization": f"Bearer {token}"}, max_queue=max_queue)
    else:
        ws = await ws_connect(relay, path + build_query(token, ext=ext, epoch=epoch, seq=seq),
                              max_queue=max_queue)
    return Peer(ws, name, "browser", ext=ext)


async def expect_refused(relay, path: str, status: int = 401, headers: dict | None = None) -> None:
    try:
        ws = await ws_connect(relay, path, headers=headers)
    except InvalidStatus as e:
        got = e.response.status_code
        assert got == status, f"{path[:60]}...: expected HTTP {status}, got {got} ({e.response.body!r})"
        return
    await ws.close()
    raise AssertionError(f"{path[:80]}: the upgrade succeeded, expected HTTP {status}")


def stats(relay) -> dict:
    with urllib.request.urlopen(relay.url("/stats"), timeout=5,
                                context=getattr(relay, "client_ssl", None)) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


async def wait_stats(relay, pred, timeout: float = 5.0, what: str = "stats") -> dict:
    """Polls /stats until pred(stats) (the relay may update counters on
    another loop a moment after a connection event)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(stats, relay)
        if pred(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"/stats never showed {what} within {timeout} s; last: {last}")


def run(coro, timeout: float):
    """asyncio.run with an overall deadline."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


# -------------------------------------------------------- raw socket client


@dataclass
class RawMessage:
    opcode: int          # 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return struct.unpack(">H", self.payload[:2])[0] if self.opcode == 8 and len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace") if self.opcode == 8 else ""


class PeerClosed(Exception):
    """EOF or reset from the relay."""


class RawWebSocket:
    """Blocking RFC 6455 client on a plain socket (a TLS socket when the relay
    has a client context): it reads and writes only when told to (never
    answers pings on its own)."""

    def __init__(self, relay, path: str, *, rcvbuf: int | None = None,
                 headers: dict | None = None, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect(), so the advertised window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((relay.host, relay.port))
        if getattr(relay, "client_ssl", None) is not None:
            self.sock = relay.client_ssl.wrap_socket(self.sock, server_hostname=relay.host)
        self.buf = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {relay.host}:{relay.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise PeerClosed(f"EOF during the handshake; got {bytes(self.buf)!r}")
            self.buf += chunk
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        self.response_head = head.decode("latin-1")
        status_line = self.response_head.split("\r\n")[0]
        self.status = int(status_line.split()[1])
        if self.status == 101:
            accept = base64.b64encode(
                hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
            ).decode()
            assert f"sec-websocket-accept: {accept}".lower() in self.response_head.lower(), self.response_head
        self.eof = False

    def _fill(self, n: int, deadline: float) -> None:
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("raw websocket: read timed out")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError as e:
                self.eof = True
                raise PeerClosed("connection reset") from e
            except ssl.SSLError as e:  # an alert, or EOF without close_notify
                self.eof = True
                raise PeerClosed(f"TLS: {e}") from e
            except socket.timeout:
                raise TimeoutError("raw websocket: read timed out") from None
            if not chunk:
                self.eof = True
                raise PeerClosed("EOF")
            self.buf += chunk

    def recv_frame(self, timeout: float = 5.0) -> tuple[bool, int, bytes]:
        b0, payload = self.recv_frame_raw(timeout)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_frame_raw(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame: its first header byte (FIN, RSV bits, opcode) and payload."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack(">H", self.buf[2:4])[0]
            hlen = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            hlen = 10
        self._fill(hlen + n, deadline)
        payload = bytes(self.buf[hlen:hlen + n])
        del self.buf[:hlen + n]
        return b0, payload

    def recv_message(self, timeout: float = 5.0) -> RawMessage:
        """A whole message or control frame (fragments reassembled)."""
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        first_op = None
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op >= 8:
                return RawMessage(op, payload)
            if op != 0:
                first_op = op
            parts.append(payload)
            if fin:
                return RawMessage(first_op, b"".join(parts))

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_binary(self, data: bytes) -> None:
        self.send_frame(0x2, data)

    def wait_eof(self, timeout: float) -> list[RawMessage]:
        """Reads (and drops) until EOF/RST; raises TimeoutError if the relay
        keeps the connection open. Returns what was read."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen.append(self.recv_message(max(0.0, deadline - time.monotonic())))
            except PeerClosed:
                return seen

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_raw_browser(relay, pod: str, *, ext: bool = False, rcvbuf: int | None = None,
                     token: str | None = None, **tok) -> RawWebSocket:
    token = token or browser_token(pod, **tok)
    raw = RawWebSocket(relay, relay_path("browser") + build_query(token, ext=ext), rcvbuf=rcvbuf)
    assert raw.status == 101, raw.response_head
    return raw


def open_raw_runner(relay, pod: str, **tok) -> RawWebSocket:
    raw = RawWebSocket(relay, relay_path("runner") + build_query(runner_token(pod, **tok)))
    assert raw.status == 101, raw.response_head
    return raw


def vm_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


# ----------------------------------------------- paced streams (no lagging)


class Pacer:
    """Keeps a runner at most `window` bytes ahead of the slowest collector.

    The relay drops frames for a browser whose outbound queue overflows: that
    is the contract, so a test that wants *every* byte at a reading browser
    must not outrun the Python client that reads it. The window is kept below
    the relay's queue bound, so a correct relay never has a reason to drop.
    A relay that blocks the runner (or stops delivering) still shows up: as a
    slow `send` or as a window that never opens within `stall_timeout`.
    """

    def __init__(self, window: int, stall_timeout: float = 10.0):
        self.window = window
        self.stall_timeout = stall_timeout
        self.sent = 0
        self.collectors: list[Collector] = []
        self.changed = asyncio.Event()
        self.max_stall = 0.0

    async def room_for(self, nbytes: int) -> None:
        start = time.monotonic()
        while True:
            for c in self.collectors:
                if c.task.done():
                    c.task.result()  # re-raises the collector's assertion
            floor = min((c.consumed for c in self.collectors), default=self.sent)
            if self.sent + nbytes - floor <= self.window or floor >= self.sent:
                break
            self.changed.clear()
            remaining = self.stall_timeout - (time.monotonic() - start)
            if remaining <= 0:
                raise AssertionError(
                    f"no progress for {self.stall_timeout} s: sent {self.sent} B, collectors at "
                    + ", ".join(f"{c.peer.name}={c.consumed} B ({c.count} frames)" for c in self.collectors)
                )
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        self.max_stall = max(self.max_stall, time.monotonic() - start)
        self.sent += nbytes


class Collector:
    """Reads `n` frames from a browser in a task and compares each with
    expected(i) as it arrives (byte-exact, in order)."""

    def __init__(self, peer: Peer, expected, n: int, pacer: Pacer | None = None,
                 frame_timeout: float = 10.0):
        self.peer = peer
        self.expected = expected
        self.n = n
        self.pacer = pacer
        self.frame_timeout = frame_timeout
        self.consumed = 0
        self.count = 0
        if pacer is not None:
            pacer.collectors.append(self)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        for i in range(self.n):
            t, p = await self.peer.recv(self.frame_timeout)
            want = self.expected(i)
            if t != want[0] or p != want[1:]:
                raise AssertionError(
                    f"{self.peer.name}: frame {i} of {self.n}: expected {describe(want[0], want[1:])}, "
                    f"got {describe(t, p)}"
                )
            self.consumed += len(want)
            self.count += 1
            if self.pacer is not None:
                self.pacer.changed.set()
