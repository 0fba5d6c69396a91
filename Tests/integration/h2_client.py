"""HTTP/2 client helpers for the relay's HTTP/2 tests (test_http2.py).

- `H2Client`: a blocking, single-threaded client on the `h2` library over a
  plain socket (h2c with prior knowledge) or TLS with ALPN h2. It reads and
  writes in `pump()`; every wait (`wait`, a stream's `recv_message`, a flow-
  controlled send) pumps the whole connection, so every stream's data is
  taken in while any one of them is waited on. A stream opened with
  `ack=False` never hands its window back (no stream WINDOW_UPDATE): its
  bytes are kept but the relay cannot send it more than the window; only
  the connection window is reopened for them (so the other streams are not
  held up by it) until `resume()`.
- `H2Stream`: one request or one RFC 8441 WebSocket (`connect_ws`): masked
  client frames in DATA, RFC 6455 frames parsed from the relay's DATA.
- `H2Peer`: a runner or browser speaking relay frames over an `H2Stream`
  (the counterpart of relay_client.Peer).
- `RawH2`: a socket speaking hand-made frames (hyperframe + hpack) for the
  protocol-error cases, where a real client library would refuse to misbehave.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import time
from collections import deque

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from h2.events import ConnectionTerminated
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame, DataFrame, ExtensionFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
    PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame,
)

from relay_client import (
    EXTENSION_TYPES, PRESENCE, RawMessage, UnexpectedFrame, describe, parse_presence, split,
    type_name,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 §7 error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}

SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8

# A large connection window for the client side, so that only stream windows
# decide what the relay may send.
CONNECTION_WINDOW = 64 * 1024 * 1024


def error_name(code: int | None) -> str:
    if code is None:
        return "None"
    return f"{ERROR_NAMES.get(int(code), 'unknown')}(0x{int(code):x})"


def h2_context(certs) -> ssl.SSLContext:
    """A client context that trusts the test CA and offers only h2 by ALPN."""
    return certs.client_context(alpn=["h2"])


# --------------------------------------------------------------- WebSocket


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def ws_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True) -> bytes:
    """One RFC 6455 frame (masked with a random key, as a client must)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode()


class WsParser:
    """RFC 6455 frames from the relay (never masked), reassembled into
    messages; control frames come out as they arrive."""

    def __init__(self, name: str):
        self.name = name
        self.buf = bytearray()
        self.parts: list[bytes] = []
        self.first_op: int | None = None

    def feed(self, data: bytes) -> list[RawMessage]:
        self.buf += data
        out = []
        while True:
            if len(self.buf) < 2:
                return out
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise AssertionError(f"{self.name}: the relay sent a masked WebSocket frame")
            if b0 & 0x70:
                raise AssertionError(f"{self.name}: the relay sent a frame with RSV bits 0x{b0 & 0x70:x}")
            n = b1 & 0x7F
            hlen = 2
            if n == 126:
                if len(self.buf) < 4:
                    return out
                n = struct.unpack(">H", self.buf[2:4])[0]
                hlen = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return out
                n = struct.unpack(">Q", self.buf[2:10])[0]
                hlen = 10
            if len(self.buf) < hlen + n:
                return out
            payload = bytes(self.buf[hlen:hlen + n])
            del self.buf[:hlen + n]
            fin, op = bool(b0 & 0x80), b0 & 0x0F
            if op >= 8:
                out.append(RawMessage(op, payload))
                continue
            if op != 0:
                if self.first_op is not None:
                    raise AssertionError(f"{self.name}: new data frame inside a fragmented message")
                self.first_op = op
            elif self.first_op is None:
                raise AssertionError(f"{self.name}: continuation frame without a message")
            self.parts.append(payload)
            if fin:
                out.append(RawMessage(self.first_op, b"".join(self.parts)))
                self.parts = []
                self.first_op = None


# -------------------------------------------------------------- h2 client


class _Connection(h2.connection.H2Connection):
    """h2's connection, except that a GOAWAY does not end it on our side:
    RFC 9113 §6.8 lets streams up to the GOAWAY's last stream id finish (a
    draining relay still sends Close 1001 on its WebSocket streams after its
    GOAWAY), and h2 would refuse every frame after it."""

    def _receive_goaway_frame(self, frame):
        ev = ConnectionTerminated()
        ev.error_code = h2.errors._error_code_from_int(frame.error_code)
        ev.last_stream_id = frame.last_stream_id
        ev.additional_data = frame.additional_data or None
        return [], [ev]


class ConnectionEnded(AssertionError):
    pass


class H2Stream:
    def __init__(self, client: "H2Client", sid: int, *, ack: bool, name: str, ws: bool):
        self.client = client
        self.sid = sid
        self.ack = ack
        self.name = name
        self.ws = ws
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = bytearray()            # DATA of a plain request, or of a refused CONNECT
        self.ended = False                 # END_STREAM from the relay
        self.reset: int | None = None      # RST_STREAM error code from the relay
        self.received = 0                  # flow-controlled bytes received
        self.unacked = 0                   # ... not handed back yet (ack=False)
        self.parser = WsParser(name)
        self.messages: deque[RawMessage] = deque()
        self.auto_pong = True
        self.close_sent = False

    # -- incoming
    def _on_data(self, data: bytes) -> None:
        if self.ws and self.status == 200:
            for m in self.parser.feed(data):
                if m.opcode == 0x9 and self.auto_pong and not self.close_sent:
                    self.send_ws(0xA, m.payload)
                self.messages.append(m)
        else:
            self.body += data

    def resume(self) -> None:
        """Hand the stream's window back, and keep doing so from now on."""
        self.ack = True
        if self.unacked:
            n, self.unacked = self.unacked, 0
            self.client._ack_stream(self.sid, n)

    @property
    def open(self) -> bool:
        return self.reset is None and not self.ended and not self.client.closed

    # -- outgoing
    def send_data(self, data: bytes, end_stream: bool = False, stall_timeout: float = 15.0) -> None:
        self.client.send_data(self.sid, data, end_stream=end_stream, stall_timeout=stall_timeout)

    def send_ws(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        if opcode == 0x8:
            self.close_sent = True
        self.send_data(ws_frame(opcode, payload, fin=fin))

    def send_binary(self, data: bytes) -> None:
        self.send_ws(0x2, data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.send_ws(0x8, close_payload(code, reason))

    def end(self) -> None:
        """END_STREAM from our side (an empty DATA frame): over HTTP/2 this is
        the WebSocket's TCP FIN (RFC 8441 §5)."""
        self.send_data(b"", end_stream=True)

    def recv_message(self, timeout: float = 5.0) -> RawMessage:
        """The next WebSocket message or control frame (pumps the connection)."""
        self.client.wait(lambda: self.messages or not self.open, timeout,
                         f"a WebSocket message on {self.name}", allow_closed=True)
        if self.messages:
            return self.messages.popleft()
        raise AssertionError(
            f"{self.name}: stream ended without a message (reset={error_name(self.reset)}, "
            f"ended={self.ended}, connection closed={self.client.closed}, goaway={self.client.goaway})")

    def wait_response(self, timeout: float = 5.0) -> int:
        self.client.wait(lambda: self.status is not None or self.reset is not None, timeout,
                         f"a response on {self.name}")
        if self.status is None:
            raise AssertionError(f"{self.name}: stream reset with {error_name(self.reset)} before a response")
        return self.status

    def wait_end(self, timeout: float = 5.0) -> None:
        self.client.wait(lambda: self.ended or self.reset is not None, timeout,
                         f"the end of {self.name}", allow_closed=True)

    def text(self) -> str:
        return bytes(self.body).decode("utf-8", "replace")


class H2Client:
    """One HTTP/2 connection to `relay` (h2c, or h2 by ALPN when the relay
    has TLS: `ssl_context` or relay.h2_ssl must then offer h2)."""

    def __init__(self, relay, *, ssl_context: ssl.SSLContext | None = None,
                 initial_window: int = 4 * 1024 * 1024, connection_window: int = CONNECTION_WINDOW,
                 settings: dict | None = None, timeout: float = 5.0, name: str = "h2"):
        self.relay = relay
        self.name = name
        self.tls = bool(getattr(relay, "tls", False))
        sock = socket.create_connection((relay.host, relay.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alpn = None
        if self.tls:
            ctx = ssl_context or getattr(relay, "h2_ssl", None)
            assert ctx is not None, "a TLS relay needs an SSL context that offers h2"
            sock = ctx.wrap_socket(sock, server_hostname=relay.host)
            self.alpn = sock.selected_alpn_protocol()
            assert self.alpn == "h2", f"ALPN: the relay selected {self.alpn!r}, not h2"
        sock.setblocking(False)
        self.sock = sock
        self.outbuf = bytearray()
        self.closed: str | None = None          # "eof" / "reset" / reason, once the relay has closed
        self.goaway: tuple[int, int, bytes | None] | None = None   # (error code, last stream id, debug)
        self.goaways: list[tuple[int, int, bytes | None]] = []
        self.remote_settings: dict[int, int] = {}
        self.settings_acked = False
        self.pings_acked = 0
        self.streams: dict[int, H2Stream] = {}
        self.protocol_error: str | None = None
        self.conn = _Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        local = {
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384,
        }
        local.update(settings or {})
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values=local)
        self.conn.initiate_connection()
        if connection_window > 65535:
            self.conn.increment_flow_control_window(connection_window - 65535)
        self.wait(lambda: bool(self.remote_settings), timeout, "the relay's SETTINGS")

    # -- I/O
    def pump(self, timeout: float) -> None:
        """One turn: write what is pending, read what has arrived (waits up
        to `timeout` for something to happen)."""
        if self.closed:
            time.sleep(min(timeout, 0.01))
            return
        self.outbuf += self.conn.data_to_send()
        pending = self.tls and self.sock.pending() > 0
        wlist = [self.sock] if self.outbuf else []
        r, w, _ = select.select([self.sock], wlist, [], 0 if pending else timeout)
        if w and self.outbuf:
            try:
                n = self.sock.send(self.outbuf[:256 * 1024])
                del self.outbuf[:n]
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except (BrokenPipeError, ConnectionResetError) as e:
                self.closed = type(e).__name__
                return
        if r or pending:
            for _ in range(64):
                try:
                    chunk = self.sock.recv(256 * 1024)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                except ConnectionResetError:
                    self.closed = "reset"
                    return
                except ssl.SSLError as e:
                    self.closed = f"TLS: {e}"
                    return
                if not chunk:
                    self.closed = "eof"
                    return
                self._feed(chunk)
                if not (self.tls and self.sock.pending() > 0):
                    # one more non-blocking read only if more is there
                    r2, _, _ = select.select([self.sock], [], [], 0)
                    if not r2:
                        break
        self.outbuf += self.conn.data_to_send()

    def _feed(self, chunk: bytes) -> None:
        try:
            events = self.conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as e:
            self.protocol_error = f"{type(e).__name__}: {e}"
            raise AssertionError(f"{self.name}: the relay sent invalid HTTP/2 ({self.protocol_error})") from None
        for ev in events:
            self._event(ev)

    def _event(self, ev) -> None:
        sid = getattr(ev, "stream_id", None)
        st = self.streams.get(sid) if sid else None
        if isinstance(ev, h2.events.ResponseReceived):
            hdrs = dict(ev.headers)
            if st is not None:
                st.status = int(hdrs[":status"])
                st.headers = hdrs
        elif isinstance(ev, h2.events.DataReceived):
            n = ev.flow_controlled_length
            if st is None:
                self.conn.acknowledge_received_data(n, sid) if n else None
                return
            st.received += n
            if n:
                if st.ack:
                    self._ack_stream(sid, n)
                else:
                    # Not read: the stream's window stays shut; the connection's
                    # is reopened so that the other streams keep flowing.
                    st.unacked += n
                    self.conn.increment_flow_control_window(n)
            st._on_data(ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            if st is not None:
                st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st.reset = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            g = (int(ev.error_code), ev.last_stream_id, ev.additional_data)
            self.goaway = g
            self.goaways.append(g)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for code, change in ev.changed_settings.items():
                self.remote_settings[int(code)] = change.new_value
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            self.settings_acked = True
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings_acked += 1

    def _ack_stream(self, sid: int, n: int) -> None:
        try:
            self.conn.acknowledge_received_data(n, sid)
        except h2.exceptions.StreamClosedError:
            pass

    def wait(self, pred, timeout: float, what: str, allow_closed: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.closed and not allow_closed:
                raise ConnectionEnded(f"{self.name}: connection closed ({self.closed}) while waiting for {what}; "
                                      f"GOAWAY: {self.describe_goaway()}")
            if self.closed and allow_closed:
                if not pred():
                    # nothing more will come
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {what} within {timeout} s; GOAWAY: {self.describe_goaway()}")
            self.pump(min(remaining, 0.05))

    def flush(self, timeout: float = 5.0) -> None:
        self.outbuf += self.conn.data_to_send()
        self.wait(lambda: not self.outbuf, timeout, "the send buffer to empty")

    def describe_goaway(self) -> str:
        if not self.goaway:
            return "none"
        code, last, data = self.goaway
        return f"{error_name(code)} last_stream_id={last} debug={data!r}"

    def sleep(self, seconds: float) -> None:
        """Keeps the connection serviced for `seconds`."""
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            self.pump(min(remaining, 0.05))

    # -- streams
    def _open(self, headers: list[tuple[str, str]], *, end_stream: bool, ack: bool, name: str,
              ws: bool) -> H2Stream:
        sid = self.conn.get_next_available_stream_id()
        st = H2Stream(self, sid, ack=ack, name=name or f"stream {sid}", ws=ws)
        self.streams[sid] = st
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.pump(0)
        return st

    def authority(self) -> str:
        return f"{self.relay.host}:{self.relay.port}"

    def request(self, method: str, path: str, headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None, name: str = "") -> H2Stream:
        hdrs = [(":method", method), (":scheme", "https" if self.tls else "http"),
                (":authority", self.authority()), (":path", path)] + list(headers or [])
        st = self._open(hdrs, end_stream=body is None, ack=True, name=name or f"{method} {path}", ws=False)
        if body is not None:
            st.send_data(body, end_stream=True)
        return st

    def get(self, path: str, headers: list[tuple[str, str]] | None = None,
            timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        st = self.request("GET", path, headers)
        st.wait_response(timeout)
        st.wait_end(timeout)
        return st.status, st.headers, bytes(st.body)

    def start_connect(self, path: str, *, protocol: str | None = "websocket",
                      headers: list[tuple[str, str]] | None = None, ack: bool = True,
                      name: str = "") -> H2Stream:
        """Sends an extended CONNECT (RFC 8441) without waiting for the answer."""
        if protocol is None:
            # An ordinary CONNECT (RFC 9113 §8.5): :method and :authority only.
            hdrs = [(":method", "CONNECT"), (":authority", self.authority())] + list(headers or [])
            return self._open(hdrs, end_stream=False, ack=ack, name=name or "CONNECT", ws=True)
        hdrs = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", "https" if self.tls else "http"),
                (":path", path), (":authority", self.authority()), ("sec-websocket-version", "13")]
        hdrs += list(headers or [])
        return self._open(hdrs, end_stream=False, ack=ack, name=name or f"CONNECT {path[:40]}", ws=True)

    def connect_ws(self, path: str, *, headers: list[tuple[str, str]] | None = None,
                   ack: bool = True, name: str = "", timeout: float = 5.0) -> H2Stream:
        """Extended CONNECT; returns the stream once the relay has answered
        (the caller checks `status`: 200, or a refusal whose body is read)."""
        st = self.start_connect(path, headers=headers, ack=ack, name=name)
        st.wait_response(timeout)
        if st.status != 200:
            st.wait_end(timeout)
        return st

    def send_data(self, sid: int, data: bytes, *, end_stream: bool = False,
                  stall_timeout: float = 15.0) -> None:
        """Flow-controlled send: as much as the relay's windows allow, pumping
        (and so reading every stream) while they are shut."""
        view = memoryview(data)
        while True:
            last_progress = time.monotonic()
            while True:
                if self.closed:
                    raise ConnectionEnded(f"{self.name}: connection closed ({self.closed}) while sending on "
                                          f"stream {sid}; GOAWAY: {self.describe_goaway()}")
                st = self.streams.get(sid)
                if st is not None and st.reset is not None:
                    raise AssertionError(f"{st.name}: reset by the relay ({error_name(st.reset)}) while sending")
                window = self.conn.local_flow_control_window(sid)
                if window > 0 or not len(view):
                    break
                if time.monotonic() - last_progress > stall_timeout:
                    raise AssertionError(f"{self.name}: the relay kept stream {sid}'s send window shut for "
                                         f"{stall_timeout} s ({len(view)} B left to send)")
                self.pump(0.05)
            n = min(window, self.conn.max_outbound_frame_size, len(view))
            last = n == len(view)
            self.conn.send_data(sid, bytes(view[:n]), end_stream=end_stream and last)
            view = view[n:]
            # Keep the socket moving (and read what comes) without waiting.
            self.outbuf += self.conn.data_to_send()
            if len(self.outbuf) > 512 * 1024:
                self.wait(lambda: len(self.outbuf) < 128 * 1024, stall_timeout, "the socket to take our data")
            else:
                self.pump(0)
            if last:
                return

    def ping(self, timeout: float = 5.0) -> None:
        """A PING round trip: the relay has processed everything before it."""
        before = self.pings_acked
        self.conn.ping(os.urandom(8))
        self.wait(lambda: self.pings_acked > before, timeout, "a PING ACK")

    def reset_stream(self, sid: int, code: int = CANCEL) -> None:
        self.conn.reset_stream(sid, code)
        self.pump(0)

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self.outbuf += self.conn.data_to_send()
            self.sock.setblocking(True)
            self.sock.settimeout(1)
            self.sock.sendall(self.outbuf)
        except Exception:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------- relay frames


class H2Peer:
    """A runner or browser over an RFC 8441 stream (cf. relay_client.Peer)."""

    def __init__(self, stream: H2Stream, name: str, role: str, ext: bool = False):
        self.stream = stream
        self.name = name
        self.role = role
        self.ext = ext
        self.presence: list[dict] = []
        self.log: list[tuple[int, bytes]] = []
        stream.name = name
        stream.parser.name = name

    def send(self, data: bytes) -> None:
        self.stream.send_binary(data)

    def recv_raw(self, timeout: float = 5.0) -> tuple[int, bytes]:
        while True:
            m = self.stream.recv_message(timeout)
            if m.opcode in (0x9, 0xA):
                continue  # pings are answered by the stream
            if m.opcode == 0x8:
                raise AssertionError(f"{self.name}: closed by the relay ({m.close_code} {m.close_reason!r}) "
                                     f"while waiting for a frame; last frames: {self.tail_log()}")
            assert m.opcode == 0x2, f"{self.name}: relay sent opcode {m.opcode} (must be binary)"
            t, p = split(m.payload)
            self.log.append((t, p))
            if self.role == "browser" and not self.ext:
                assert t not in EXTENSION_TYPES, f"{self.name}: non-ext browser got {describe(t, p)}"
            return t, p

    def recv(self, timeout: float = 5.0, *, skip_presence: bool = True) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            t, p = self.recv_raw(max(0.01, deadline - time.monotonic()))
            if t == PRESENCE and skip_presence:
                self.presence.append(parse_presence(p))
                continue
            return t, p

    def expect(self, t: int, payload: bytes | None = None, timeout: float = 5.0) -> bytes:
        got_t, got_p = self.recv(timeout)
        if got_t != t or (payload is not None and got_p != payload):
            want = describe(t, payload) if payload is not None else type_name(t)
            raise UnexpectedFrame(f"{self.name}: expected {want}, got {describe(got_t, got_p)}")
        return got_p

    def expect_message(self, message: bytes, timeout: float = 5.0) -> None:
        self.expect(message[0], message[1:], timeout)

    def recv_until(self, pred, timeout: float = 5.0, what: str = "frame"):
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {what} within {timeout} s; "
                                     f"skipped {[describe(*f) for f in skipped[-8:]]}")
            t, p = self.recv(remaining)
            if pred(t, p):
                return skipped, (t, p)
            skipped.append((t, p))

    def expect_close(self, timeout: float = 5.0) -> tuple[RawMessage, list[tuple[int, bytes]]]:
        """Reads until the relay's Close frame: (close, frames read meanwhile)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no Close within {timeout} s; read "
                                     f"{[describe(*f) for f in frames[-8:]]}")
            m = self.stream.recv_message(remaining)
            if m.opcode == 0x8:
                return m, frames
            if m.opcode == 0x2 and m.payload:
                frames.append(split(m.payload))

    def close(self, code: int = 1000, timeout: float = 5.0) -> RawMessage:
        """The closing handshake as an RFC 8441 client does it: Close, the
        relay's Close, then END_STREAM (the FIN). Returns the relay's Close."""
        self.stream.send_close(code)
        m, _ = self.expect_close(timeout)
        if self.stream.reset is None and not self.stream.client.closed:
            self.stream.end()
        return m

    def tail_log(self, n: int = 6) -> list[str]:
        return [describe(t, p) for t, p in self.log[-n:]]


# ------------------------------------------------------------ raw frames


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame by hand (hyperframe's ExtensionFrame serializes a zero length)."""
    return struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags]) + struct.pack(">I", stream_id) + payload



class RawH2:
    """A socket that speaks hand-made HTTP/2 frames (plain, or TLS with ALPN
    h2 when `ssl_context` is given)."""

    def __init__(self, relay, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0):
        sock = socket.create_connection((relay.host, relay.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=relay.host)
        self.sock = sock
        self.relay = relay
        self.buf = bytearray()
        self.frames: list[Frame] = []
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.decoder.max_allowed_table_size = 65536
        self.block: tuple[int, bytearray] | None = None
        self.responses: dict[int, dict[str, str]] = {}   # stream id -> decoded response headers
        self.data: dict[int, bytearray] = {}             # stream id -> DATA received
        self.eof: str | None = None

    def authority(self) -> str:
        return f"{self.relay.host}:{self.relay.port}"

    def send_bytes(self, data: bytes) -> str | None:
        """sendall that reports (instead of raising) the relay closing on us."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            return type(e).__name__
        except socket.timeout:
            return "timeout"
        return None

    def send(self, *frames: Frame) -> str | None:
        return self.send_bytes(b"".join(f.serialize() for f in frames))

    def handshake(self, settings: dict[int, int] | None = None, timeout: float = 5.0) -> SettingsFrame:
        """Preface + SETTINGS; waits for the relay's SETTINGS and ACKs it."""
        s = SettingsFrame(0)
        s.settings = {SettingsFrame.ENABLE_PUSH: 0, **(settings or {})}
        err = self.send_bytes(PREFACE + s.serialize())
        assert err is None, f"sending the preface: {err}"
        got = self.read_until(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags, timeout,
                              "the relay's SETTINGS")
        ack = SettingsFrame(0)
        ack.flags.add("ACK")
        self.send(ack)
        return got

    def headers_frame(self, sid: int, headers: list[tuple[str, str]], *, end_stream: bool,
                      end_headers: bool = True) -> HeadersFrame:
        f = HeadersFrame(sid)
        f.data = self.encoder.encode(headers)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def get_headers(self, sid: int, path: str, extra: list[tuple[str, str]] | None = None,
                    end_stream: bool = True, method: str = "GET") -> HeadersFrame:
        return self.headers_frame(sid, [(":method", method), (":scheme", "http"),
                                        (":authority", self.authority()), (":path", path)]
                                  + list(extra or []), end_stream=end_stream)

    def _recv(self, timeout: float) -> bool:
        """Reads once (False on timeout); sets eof when the relay has closed."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = "reset"
            return True
        except ssl.SSLError as e:
            self.eof = f"TLS: {e}"
            return True
        except OSError as e:
            self.eof = f"{type(e).__name__}"
            return True
        if not chunk:
            self.eof = "eof"
            return True
        self.buf += chunk
        self._parse()
        return True

    def _parse(self) -> None:
        while len(self.buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            f.parse_body(memoryview(bytes(self.buf[9:9 + length])))
            del self.buf[:9 + length]
            self.frames.append(f)
            if isinstance(f, HeadersFrame):
                self.block = (f.stream_id, bytearray(f.data))
            elif isinstance(f, ContinuationFrame) and self.block is not None:
                self.block[1].extend(f.data)
            elif isinstance(f, DataFrame):
                self.data.setdefault(f.stream_id, bytearray()).extend(f.data)
            if isinstance(f, (HeadersFrame, ContinuationFrame)) and "END_HEADERS" in f.flags and self.block:
                sid, block = self.block
                self.block = None
                self.responses.setdefault(sid, {}).update(
                    {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                     for k, v in self.decoder.decode(bytes(block))})

    def read_until(self, pred, timeout: float, what: str):
        """Frames until pred(frame) (returns that frame); AssertionError on
        timeout or close."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for f in self.frames[seen:]:
                if pred(f):
                    return f
            seen = len(self.frames)
            if self.eof:
                raise AssertionError(f"connection closed ({self.eof}) before {what}; frames: {self.summary()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; frames: {self.summary()}")
            self._recv(remaining)

    def read_until_closed(self, timeout: float) -> str:
        """Reads until the relay closes: "eof" / "reset". AssertionError if
        it is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the relay kept the connection open for {timeout} s; "
                                     f"frames: {self.summary()}")
            self._recv(remaining)
        return self.eof

    @classmethod
    def parse_bytes(cls, data: bytes) -> list[Frame]:
        """The frames in `data` (bytes read elsewhere), HPACK blocks decoded
        with a fresh decoder."""
        raw = cls.__new__(cls)
        raw.buf, raw.frames, raw.block, raw.responses, raw.data = bytearray(data), [], None, {}, {}
        raw.decoder = Decoder()
        raw._parse()
        return raw.frames

    def goaways(self) -> list[GoAwayFrame]:
        return [f for f in self.frames if isinstance(f, GoAwayFrame)]

    def summary(self, n: int = 12) -> str:
        out = []
        for f in self.frames[-n:]:
            if isinstance(f, GoAwayFrame):
                out.append(f"GOAWAY({error_name(f.error_code)}, last={f.last_stream_id}, {f.additional_data[:60]!r})")
            elif isinstance(f, RstStreamFrame):
                out.append(f"RST_STREAM({f.stream_id}, {error_name(f.error_code)})")
            else:
                out.append(f"{type(f).__name__}({f.stream_id}, {sorted(f.flags)})")
        more = f"... {len(self.frames) - n} earlier, " if len(self.frames) > n else ""
        return more + ", ".join(out) + (f"; unparsed {len(self.buf)} B" if self.buf else "")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


__all__ = [
    "H2Client", "H2Stream", "H2Peer", "RawH2", "raw_frame", "ws_frame", "close_payload", "h2_context",
    "PREFACE", "ContinuationFrame", "DataFrame", "ExtensionFrame", "GoAwayFrame", "HeadersFrame",
    "PingFrame", "PriorityFrame", "RstStreamFrame", "SettingsFrame", "WindowUpdateFrame",
    "error_name", "NO_ERROR", "PROTOCOL_ERROR", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
    "ENHANCE_YOUR_CALM", "SETTINGS_ENABLE_CONNECT_PROTOCOL",
]
