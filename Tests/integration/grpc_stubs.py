"""Client side of the relay's gRPC interface (proto/relay/v1/relay.proto) for
the integration tests.

- `relay_stubs`: a session fixture that runs `grpc_tools.protoc` on the proto
  into a temporary folder (the generated code is not committed) and imports
  `relay_pb2` / `relay_pb2_grpc` from there;
- `GrpcPeer`: a runner or browser on one `Attach` call of a `grpc.aio`
  channel, with the same frame-level helpers as `relay_client.Peer`
  (a background task reads the call, so a receive timeout never cancels it);
- `RawH2`: a minimal asyncio HTTP/2 client on the `h2` library, for what the
  grpc library hides: the frames on the wire (trailers-only responses,
  messages split across DATA frames, the 5-byte message prefix).
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import grpc
import grpc.aio
import h2.config
import h2.connection
import h2.events
import pytest

from conftest import REPO
from relay_client import EXTENSION_TYPES, Peer, describe, split

ATTACH = "/relay.v1.Relay/Attach"
PROTO_DIR = REPO / "proto"
PROTO_FILE = "relay/v1/relay.proto"

# No proxy from the environment; room for the relay's largest messages.
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


# ------------------------------------------------------------ generated code


@pytest.fixture(scope="session")
def relay_stubs(tmp_path_factory) -> SimpleNamespace:
    """relay_pb2 and relay_pb2_grpc, generated from proto/relay/v1/relay.proto
    now (with the grpcio-tools of .venv) into a temporary folder."""
    out = tmp_path_factory.mktemp("grpc-gen")
    proc = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(PROTO_DIR),
         f"--python_out={out}", f"--grpc_python_out={out}", str(PROTO_DIR / PROTO_FILE)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    if proc.returncode != 0:
        pytest.fail(f"protoc failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    # The generated grpc module imports `from relay.v1 import relay_pb2`.
    for name in [m for m in sys.modules if m == "relay" or m.startswith("relay.")]:
        del sys.modules[name]
    sys.path.insert(0, str(out))
    try:
        importlib.invalidate_caches()
        pb2 = importlib.import_module("relay.v1.relay_pb2")
        pb2_grpc = importlib.import_module("relay.v1.relay_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    for mod in (pb2, pb2_grpc):
        assert str(out) in str(mod.__file__), f"{mod.__name__} imported from {mod.__file__}, not {out}"
    desc = pb2.DESCRIPTOR.services_by_name["Relay"].methods_by_name["Attach"]
    assert desc.client_streaming and desc.server_streaming, "Attach must be a bidirectional stream"
    return SimpleNamespace(pb2=pb2, pb2_grpc=pb2_grpc, Frame=pb2.Frame, out=out)


# --------------------------------------------------------------- grpc client


def target(relay) -> str:
    return f"{relay.host}:{relay.port}"


def insecure_channel(relay) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target(relay), options=CHANNEL_OPTIONS)


def secure_channel(relay, certs, client=None) -> grpc.aio.Channel:
    """h2 over TLS (ALPN) to a `--tls` relay, trusting the test CA and
    presenting `client` (a tls_certs.KeyPair) if given."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.cert.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    return grpc.aio.secure_channel(target(relay), creds, options=CHANNEL_OPTIONS)


def call_metadata(token: str | None, *, ext: bool = False, epoch: int | None = None,
                  seq: int | None = None) -> list[tuple[str, str]]:
    md = []
    if token is not None:
        md.append(("authorization", f"Bearer {token}"))
    if ext:
        md.append(("x-relay-ext", "1"))
    if epoch is not None:
        md.append(("x-relay-epoch", str(epoch)))
    if seq is not None:
        md.append(("x-relay-seq", str(seq)))
    return md


@dataclass
class Ended:
    """The end of a call as the client saw it."""
    code: grpc.StatusCode
    details: str

    def __str__(self) -> str:
        return f"{self.code.name} ({self.details!r})"


class GrpcPeer(Peer):
    """A runner or browser on one Attach call. `recv`, `expect`, `recv_until`
    (presence handling, the no-extension-frame check for plain browsers)
    come from `Peer`; receiving reads a queue that a task fills from the call."""

    def __init__(self, stubs, channel: grpc.aio.Channel, token: str | None, name: str, role: str, *,
                 ext: bool = False, epoch: int | None = None, seq: int | None = None,
                 timeout: float | None = None, metadata: list | None = None):
        super().__init__(None, name, role, ext)
        self.stubs = stubs
        md = metadata if metadata is not None else call_metadata(token, ext=ext, epoch=epoch, seq=seq)
        self.call = stubs.pb2_grpc.RelayStub(channel).Attach(metadata=md, timeout=timeout)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.ended: Ended | None = None
        self.reader = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                msg = await self.call.read()
                if msg is grpc.aio.EOF:
                    break
                assert isinstance(msg, self.stubs.Frame), type(msg)
                self.queue.put_nowait(msg.data)
        except grpc.aio.AioRpcError:
            pass  # the status follows
        code = await self.call.code()
        details = await self.call.details() or ""
        self.ended = Ended(code, details)
        self.queue.put_nowait(self.ended)

    async def send(self, data: bytes) -> None:
        await self.call.write(self.stubs.Frame(data=data))

    async def send_frame(self, t: int, payload: bytes = b"") -> None:
        await self.send(bytes([t]) + payload)

    async def recv_raw(self, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.name}: nothing received within {timeout} s; last frames: {self.tail_log()}"
            ) from None
        if isinstance(item, Ended):
            self.queue.put_nowait(item)  # later reads see the end too
            raise AssertionError(
                f"{self.name}: call ended {item} while waiting for a frame; last frames: {self.tail_log()}"
            )
        t, payload = split(item)
        self.log.append((t, payload))
        if self.role == "browser" and not self.ext:
            assert t not in EXTENSION_TYPES, f"{self.name}: non-ext browser received extension frame {describe(t, payload)}"
        return t, payload

    async def finish(self, timeout: float = 5.0) -> tuple[Ended, list[tuple[int, bytes]]]:
        """Reads until the call ends: (its end, the frames read meanwhile)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: call still open after {timeout} s; "
                                     f"read {[describe(*f) for f in frames[-8:]]}")
            try:
                item = await asyncio.wait_for(self.queue.get(), remaining)
            except asyncio.TimeoutError:
                continue
            if isinstance(item, Ended):
                self.queue.put_nowait(item)
                return item, frames
            frames.append(split(item))

    async def half_close(self) -> None:
        await self.call.done_writing()

    async def close(self) -> None:
        self.call.cancel()
        try:
            await asyncio.wait_for(self.reader, 5)
        except (asyncio.CancelledError, asyncio.TimeoutError):
            pass

    async def sync(self, timeout: float = 5.0) -> None:
        raise NotImplementedError("no ping round trip on a gRPC call")

    def abort(self) -> None:
        self.call.cancel()


# ------------------------------------------------------------ raw HTTP/2


def grpc_message(payload: bytes, compressed: bool = False) -> bytes:
    """The gRPC length-prefixed message: flag u8, length u32 BE, payload."""
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


def parse_grpc_messages(body: bytes) -> list[bytes]:
    """Splits a response body into its messages; every prefix must be
    uncompressed and the body must end on a message boundary."""
    out = []
    i = 0
    while i < len(body):
        assert len(body) - i >= 5, f"{len(body) - i} stray bytes at the end of the body (a cut prefix): {body[i:]!r}"
        flag, n = struct.unpack(">BI", body[i:i + 5])
        assert flag == 0, f"message {len(out)} at offset {i}: compressed flag {flag} (no grpc-encoding was negotiated)"
        assert len(body) - i - 5 >= n, (
            f"message {len(out)} at offset {i}: prefix says {n} bytes, only {len(body) - i - 5} follow")
        out.append(body[i + 5:i + 5 + n])
        i += 5 + n
    return out


@dataclass
class H2Call:
    stream_id: int
    response_headers: list | None = None
    # The END_STREAM flag came on the response HEADERS (trailers-only).
    trailers_only: bool = False
    body: bytearray = field(default_factory=bytearray)
    data_frames: list = field(default_factory=list)  # payload size of each DATA frame
    trailers: list | None = None
    ended: bool = False
    reset: int | None = None

    def header(self, name: str, headers: list | None = None) -> str | None:
        for k, v in (headers if headers is not None else (self.response_headers or [])):
            if k == name:
                return v
        return None

    @property
    def status_headers(self) -> list:
        """Where grpc-status is: the trailers, or the only HEADERS."""
        return (self.response_headers or []) if self.trailers_only else (self.trailers or [])

    @property
    def grpc_status(self) -> str | None:
        return self.header("grpc-status", self.status_headers)

    @property
    def grpc_message(self) -> str | None:
        return self.header("grpc-message", self.status_headers)

    def describe(self) -> str:
        return (f"stream {self.stream_id}: headers={self.response_headers} trailers_only={self.trailers_only} "
                f"body={len(self.body)} B in {len(self.data_frames)} DATA frames trailers={self.trailers} "
                f"ended={self.ended} reset={self.reset}")


class RawH2:
    """An HTTP/2 client connection (h2c with prior knowledge, or h2 over TLS
    with ALPN) that shows what the relay put on the wire."""

    def __init__(self, relay, reader, writer, tls: bool):
        self.relay = relay
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.calls: dict[int, H2Call] = {}
        self.changed = asyncio.Event()
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.eof = False
        self.events: list = []

    @classmethod
    async def connect(cls, relay, ssl_context: ssl.SSLContext | None = None) -> "RawH2":
        kw = {}
        if ssl_context is not None:
            kw = {"ssl": ssl_context, "server_hostname": relay.host}
        reader, writer = await asyncio.wait_for(asyncio.open_connection(relay.host, relay.port, **kw), 5)
        self = cls(relay, reader, writer, ssl_context is not None)
        if ssl_context is not None:
            self.alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        self.conn.initiate_connection()
        await self.flush()
        self.task = asyncio.create_task(self._read())
        return self

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(1 << 20)
                if not data:
                    break
                for ev in self.conn.receive_data(data):
                    self._handle(ev)
                await self.flush()
                self.changed.set()
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            self.eof = True
            self.changed.set()

    def _handle(self, ev) -> None:
        self.events.append(ev)
        call = self.calls.get(getattr(ev, "stream_id", None) or -1)
        if isinstance(ev, h2.events.ResponseReceived):
            call.response_headers = list(ev.headers)
            call.trailers_only = ev.stream_ended is not None
        elif isinstance(ev, h2.events.DataReceived):
            call.body += ev.data
            call.data_frames.append(len(ev.data))
            if ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            call.trailers = list(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            call.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            call.reset = ev.error_code
            call.ended = True
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev

    async def wait_for(self, pred, timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.eof and not pred():
                raise AssertionError(f"connection closed before {what}; calls: "
                                     + "; ".join(c.describe() for c in self.calls.values()))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; calls: "
                                     + "; ".join(c.describe() for c in self.calls.values()))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def start_call(self, path: str = ATTACH, metadata: list | None = None,
                         end_stream: bool = False) -> H2Call:
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"), (":scheme", "https" if self.tls else "http"), (":path", path),
            (":authority", f"{self.relay.host}:{self.relay.port}"),
            ("content-type", "application/grpc"), ("te", "trailers"),
            *(metadata or []),
        ]
        call = H2Call(sid)
        self.calls[sid] = call
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        await self.flush()
        return call

    async def send_data(self, call: H2Call, chunks, end_stream: bool = False, timeout: float = 10.0) -> None:
        """Each chunk as one DATA frame (chunks are at most the peer's frame
        size), waiting for flow-control window when needed."""
        chunks = list(chunks)
        for i, chunk in enumerate(chunks):
            assert len(chunk) <= self.conn.max_outbound_frame_size, len(chunk)
            await self.wait_for(lambda: self.conn.local_flow_control_window(call.stream_id) >= len(chunk),
                                timeout, f"flow-control window for {len(chunk)} B")
            self.conn.send_data(call.stream_id, chunk, end_stream=end_stream and i == len(chunks) - 1)
            await self.flush()
        if end_stream and not chunks:
            self.conn.end_stream(call.stream_id)
            await self.flush()

    async def send_message(self, call: H2Call, payload: bytes, end_stream: bool = False) -> None:
        """One gRPC message in as few DATA frames as the frame size allows."""
        msg = grpc_message(payload)
        step = self.conn.max_outbound_frame_size
        await self.send_data(call, [msg[i:i + step] for i in range(0, len(msg), step)], end_stream)

    async def end_stream(self, call: H2Call) -> None:
        self.conn.end_stream(call.stream_id)
        await self.flush()

    async def close(self) -> None:
        try:
            self.conn.close_connection()
            await self.flush()
        except Exception:
            pass
        self.writer.close()
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass
