"""permessage-deflate (RFC 7692) end to end (docs/protocol.md §3.1).

- Negotiation: the exact answer to an offer, offers declined (the upgrade
  goes on uncompressed), `--compression off`; Python `websockets` clients
  with the offers of Autobahn's section 13 (context takeover, window bits,
  several offers), against the echo endpoint.
- Out: terminal output reaches a compressing and a plain browser of one pod
  byte for byte, the compressing one with fewer bytes on its socket
  (counted by a byte-counting TCP proxy in front of each); RSV1 only on
  messages of at least `--compression-min-size`; the compressed form
  inflates alone (no context takeover).
- Zero copy: each runner frame is compressed once whatever the fan-out, and
  the relay's slab allocations do not grow with the number of browsers.
- In: messages compressed by the client, whole and fragmented (Autobahn
  section 12's sizes and fragmentations through the echo endpoint, and
  browser Input to a runner); a deflate bomb is closed with 1009 without the
  relay's memory growing past the bound; bad DEFLATE data 1007, invalid
  UTF-8 after inflating 1007, RSV1 on a continuation or control frame 1002.
- Headless Chromium on the dev terminal page negotiates compression and the
  terminal keeps working.
- HTTP/2 (RFC 8441) WebSockets negotiate and compress the same way.

Autobahn's own sections 12 and 13 cannot run through the installed kosoku
(see test_autobahn.py); the echo tests below stand in for them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import struct
import time
import urllib.request
import zlib

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

from conftest import HOST, over_transport
from relay_client import (
    INPUT, OUTPUT, RESYNC, Collector, Pacer, Peer, PeerClosed, RawWebSocket, browser_token,
    build_query, describe, frame, new_pod, relay_path, run, runner_token, stats, vm_rss_bytes, wait_stats,
)

ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
MIN_SIZE = 64  # --compression-min-size's default
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2: appended before inflating


# ------------------------------------------------------------------ helpers


async def ws_open(port: int, path: str, *, compression: str | None = "deflate",
                  extensions=None, max_queue: int | None = 4096, ssl=None) -> ClientConnection:
    """A `websockets` client on 127.0.0.1:`port` (the relay or a proxy in
    front of it), offering permessage-deflate unless `compression=None`;
    over TLS with the client context `ssl`."""
    return await connect(
        f"{'wss' if ssl else 'ws'}://{HOST}:{port}{path}",
        **({"ssl": ssl} if ssl else {}),
        compression=compression,
        extensions=extensions,
        max_size=None,
        max_queue=max_queue,
        ping_interval=None,
        open_timeout=5,
        close_timeout=2,
        proxy=None,
    )


def deflate_of(ws: ClientConnection) -> PerMessageDeflate | None:
    """The permessage-deflate extension the client agreed on, if any."""
    found = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
    return found[0] if found else None


async def runner_peer(relay, pod: str, *, compression: str | None = "deflate", port: int | None = None) -> Peer:
    ws = await ws_open(port or relay.port, relay_path("runner") + build_query(runner_token(pod)),
                       compression=compression, ssl=relay.client_ssl)
    return Peer(ws, "runner", "runner", ext=False)


async def browser_peer(relay, pod: str, name: str, *, compression: str | None = "deflate",
                       port: int | None = None, user_id: int = 1001) -> Peer:
    ws = await ws_open(port or relay.port,
                       relay_path("browser") + build_query(browser_token(pod, user_id=user_id)),
                       compression=compression, ssl=relay.client_ssl)
    return Peer(ws, name, "browser", ext=False)


class CountingProxy:
    """A TCP proxy on 127.0.0.1 in front of the relay that counts the bytes
    it carries each way: `down` (relay to client) is what the client's
    socket received."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> "CountingProxy":
        self.server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        relay_r, relay_w = await asyncio.open_connection(HOST, self.target_port)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, downstream: bool) -> None:
            try:
                while data := await r.read(1 << 16):
                    if downstream:
                        self.down += len(data)
                    else:
                        self.up += len(data)
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(client_r, relay_w, False), pipe(relay_r, client_w, True))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def metric(relay, name: str) -> int:
    with relay.urlopen("/metrics") as resp:
        text = resp.read().decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"no {name} in /metrics:\n{text}"
    return int(m.group(1))


def compression_stats(relay) -> dict:
    c = stats(relay).get("compression")
    assert isinstance(c, dict) and set(c) >= {"connections", "compressions", "bytes_in", "bytes_out"}, \
        f"/stats has no compression object: {stats(relay)}"
    return c


async def wait_compression(relay, pred, what: str, timeout: float = 5.0) -> dict:
    """Polls /stats until pred(its compression object)."""
    s = await wait_stats(relay, lambda s: pred(s.get("compression") or {}), timeout, f"compression {what}")
    return s["compression"]


# Terminal output: build logs with ANSI colours, as a runner's PTY sends them.
CRATES = ["serde", "tokio", "hyper", "regex", "clap", "anyhow", "syn", "quote", "proc-macro2",
          "libc", "rand", "bytes", "futures-util", "tracing", "mio", "parking_lot", "itoa"]
MODULES = ["relay", "framing", "reactor", "pods", "admin", "settings", "deflate", "http2"]


def terminal_chunk(rng: random.Random, target: int) -> bytes:
    out: list[str] = []
    size = 0
    while size < target:
        r = rng.random()
        crate = rng.choice(CRATES)
        mod = rng.choice(MODULES)
        if r < 0.45:
            line = (f"\x1b[1m\x1b[32m   Compiling\x1b[0m {crate} v{rng.randint(0, 2)}.{rng.randint(0, 40)}."
                    f"{rng.randint(0, 30)} (/home/dev/.cargo/registry/src/index.crates.io-6f17d22bba15001f/"
                    f"{crate}-{rng.randint(0, 2)}.{rng.randint(0, 40)}.{rng.randint(0, 30)})\r\n")
        elif r < 0.6:
            var = rng.choice(["buf", "len", "frame", "ctx", "slab", "peer", "offset"])
            line = (f"\x1b[1m\x1b[33mwarning\x1b[0m\x1b[1m: unused variable: `{var}`\x1b[0m\r\n"
                    f"  \x1b[1m\x1b[34m-->\x1b[0m src/{mod}/mod.rs:{rng.randint(1, 900)}:{rng.randint(1, 80)}\r\n"
                    f"   \x1b[1m\x1b[34m|\x1b[0m\r\n"
                    f"\x1b[1m\x1b[34m{rng.randint(1, 900):>3}\x1b[0m \x1b[1m\x1b[34m|\x1b[0m     let {var} = "
                    f"self.{var}.take();\r\n"
                    f"   \x1b[1m\x1b[34m|\x1b[0m         \x1b[1m\x1b[33m^^^\x1b[0m \x1b[1m\x1b[33mhelp: if this is "
                    f"intentional, prefix it with an underscore: `_{var}`\x1b[0m\r\n\r\n")
        elif r < 0.9:
            ok = rng.random() < 0.95
            verdict = "\x1b[32mok\x1b[0m" if ok else "\x1b[31mFAILED\x1b[0m"
            line = f"test {mod}::tests::{rng.choice(CRATES).replace('-', '_')}_{rng.randint(0, 99)} ... {verdict}\r\n"
        else:
            done = rng.randint(0, 40)
            line = (f"\x1b[2K\r\x1b[36m    Building\x1b[0m [{'=' * done}>{' ' * (40 - done)}] "
                    f"{rng.randint(1, 400)}/412: {crate}(build), {rng.choice(CRATES)}\r\n")
        out.append(line)
        size += len(line)
    return "".join(out).encode()


TINY = [b"\x1b[K", b"$ ", b"l", b"s", b"\r\n", b"\x1b[?25h", b"\x1b[1;32mpty$ \x1b[0m", b"\x07",
        "\x1b[33m⠋\x1b[0m Building".encode()]


def terminal_stream(n: int, seed: int = 7) -> list[bytes]:
    """`n` Output messages: mostly a few KB of build output, every fifth a
    tiny one (under the 64-byte minimum)."""
    rng = random.Random(seed)
    msgs = []
    for i in range(n):
        if i % 5 == 4:
            msgs.append(frame(OUTPUT, rng.choice(TINY)))
        else:
            msgs.append(frame(OUTPUT, terminal_chunk(rng, rng.randint(2000, 6000))))
    for m in msgs:
        if m[1:] in TINY:
            assert len(m) < MIN_SIZE
    return msgs


# -------------------------------------------------------- raw frame helpers


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame, RSV1 as asked."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    return head + key + mask_bytes(payload, key)


def deflate_message(data: bytes, level: int = 6) -> bytes:
    """A message's payload as a zlib sender makes it (RFC 7692 §7.2.1): raw
    DEFLATE, sync flush, the trailing 00 00 FF FF removed."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate_alone(payload: bytes) -> tuple[bytes, zlib._Decompress]:
    """A compressed message inflated by a fresh decompressor (no context
    from earlier messages: the relay promises server_no_context_takeover)."""
    d = zlib.decompressobj(-15)
    return d.decompress(payload + TAIL), d


def recv_frame_rsv(raw: RawWebSocket, timeout: float = 5.0) -> tuple[int, bytes]:
    """The next frame from the relay: (first header byte, payload). Unlike
    RawWebSocket.recv_frame it keeps the RSV bits."""
    return raw.recv_frame_raw(timeout)


def expect_close(raw: RawWebSocket, timeout: float = 10.0) -> tuple[int | None, str, list]:
    """Reads until the relay's Close frame; returns (code, reason, frames
    read before it as (first byte, payload))."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no Close within {timeout} s; read {[(hex(b), p[:20]) for b, p in seen[-5:]]}")
        try:
            b0, payload = recv_frame_rsv(raw, remaining)
        except PeerClosed as e:
            raise AssertionError(f"connection ended without a Close frame ({e}); read "
                                 f"{[(hex(b), p[:20]) for b, p in seen[-5:]]}") from None
        if b0 & 0x0F == 0x8:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            return code, payload[2:].decode("utf-8", "replace"), seen
        seen.append((b0, payload))


def extensions_header(raw: RawWebSocket) -> list[str]:
    """Every Sec-WebSocket-Extensions value of the 101 response."""
    values = []
    for line in raw.response_head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            values.append(value.strip())
    return values


def raw_upgrade(relay, path: str, offer: str | None) -> RawWebSocket:
    raw = RawWebSocket(relay, path, headers={"Sec-WebSocket-Extensions": offer} if offer is not None else None)
    assert raw.status == 101, f"{path[:30]} with offer {offer!r}: {raw.response_head}"
    return raw


# ------------------------------------------------------------- negotiation


OFFERS = [
    # (offer, answered?)
    ("permessage-deflate", True),
    ("permessage-deflate; client_max_window_bits", True),            # Chromium's and websockets' offer
    ("permessage-deflate; client_max_window_bits=10", True),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover", True),
    ("Permessage-Deflate", True),                                      # tokens are case-insensitive
    ('permessage-deflate; client_max_window_bits="10"', True),        # quoted value (§7.1.2)
    ("permessage-deflate ; client_max_window_bits", True),             # spaces around the ;
    ("permessage-deflate; server_max_window_bits=10", False),          # cannot promise a 10-bit window
    ("permessage-deflate; server_max_window_bits=8", False),
    ("permessage-deflate; foo=1", False),                              # unknown parameter
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", False),  # repeated
    ("permessage-deflate; client_max_window_bits=16", False),          # out of range
    ("permessage-deflate; server_no_context_takeover=1", False),       # value on a flag
    ("x-webkit-deflate-frame", False),
    ("deflate-frame", False),
    # Several offers: the first one that can be honoured.
    ("permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits", True),
    ("permessage-deflate; foo, x-webkit-deflate-frame", False),
]


def test_negotiation_answers_exactly(start_relay):
    """A raw HTTP/1.1 upgrade on each WebSocket path (runner, browser, echo)
    with each offer: an acceptable one gets exactly one
    `Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover;
    client_no_context_takeover`; one the relay cannot honour is declined
    (101 without the header), and a frame with RSV1 is then a protocol
    error (1002), as with no offer at all."""
    relay = start_relay("--echo-endpoint")
    wrong = []
    for offer, accepted in OFFERS + [(None, False)]:
        pod = new_pod()  # a pod per offer: no browser limit, no runner replaced
        paths = {
            "runner": relay_path("runner") + build_query(runner_token(pod)),
            "browser": relay_path("browser") + build_query(browser_token(pod)),
            "echo": "/test/echo",
        }
        for name, path in paths.items():
            raw = raw_upgrade(relay, path, offer)
            try:
                got = extensions_header(raw)
                want = [ANSWER] if accepted else []
                if got != want:
                    wrong.append(f"{name} offer {offer!r}: Sec-WebSocket-Extensions {got}, expected {want}")
                elif not accepted and name != "runner":
                    # Declined: RSV1 is not allowed on this connection.
                    raw.sock.sendall(client_frame(0x2, deflate_message(frame(INPUT, b"x" * 200)), rsv1=True))
                    code, reason, _ = expect_close(raw)
                    if code != 1002:
                        wrong.append(f"{name} offer {offer!r} declined, RSV1 frame: Close {code} {reason!r}, expected 1002")
            finally:
                raw.close()
    # Offers over two header lines: the first that can be honoured.
    for first, second, accepted in (("permessage-deflate; server_max_window_bits=9", "permessage-deflate", True),
                                    ("x-webkit-deflate-frame", "permessage-deflate; foo", False)):
        raw = RawWebSocket(relay, "/test/echo", headers={"Sec-WebSocket-Extensions": first,
                                                         "sec-websocket-extensions": second})
        try:
            assert raw.status == 101, raw.response_head
            got = extensions_header(raw)
            if got != ([ANSWER] if accepted else []):
                wrong.append(f"two header lines {first!r} / {second!r}: {got}")
        finally:
            raw.close()
    assert not wrong, "\n".join(wrong)


def test_compression_off_answers_no_offer(start_relay):
    """`--compression off`: no Sec-WebSocket-Extensions whatever the offer;
    a `websockets` client that offers compression works uncompressed."""
    relay = start_relay("--compression", "off", "--echo-endpoint")
    pod = new_pod()
    for path in (relay_path("browser") + build_query(browser_token(pod)), "/test/echo"):
        for offer in ("permessage-deflate", "permessage-deflate; client_max_window_bits"):
            raw = raw_upgrade(relay, path, offer)
            try:
                assert extensions_header(raw) == [], f"{path[:20]} {offer!r}: {raw.response_head}"
            finally:
                raw.close()

    async def main():
        runner = await runner_peer(relay, pod)
        browser = await browser_peer(relay, pod, "browser")
        assert deflate_of(runner.ws) is None and deflate_of(browser.ws) is None
        msg = frame(OUTPUT, terminal_chunk(random.Random(1), 3000))
        await runner.send(msg)
        await browser.expect_message(msg)
        assert compression_stats(relay) == {"connections": 0, "compressions": 0, "bytes_in": 0, "bytes_out": 0}
        await browser.close()
        await runner.close()

    run(main(), 20)


def test_server_max_window_bits_15_is_accepted_with_the_parameter(start_relay):
    """An offer of `server_max_window_bits=15` can be honoured, and the relay
    accepts it; RFC 7692 §7.1.2.1: a server accepts such an offer "by
    including the server_max_window_bits extension parameter in the
    extension negotiation response ... with the same or smaller value". A
    client holds the server to it: `websockets` fails the handshake when the
    parameter it asked for is missing from the answer."""
    relay = start_relay("--echo-endpoint")
    raw = raw_upgrade(relay, "/test/echo", "permessage-deflate; server_max_window_bits=15")
    try:
        got = extensions_header(raw)
    finally:
        raw.close()
    assert len(got) == 1, f"offer server_max_window_bits=15 declined or answered twice: {got}"
    params = [p.strip() for p in got[0].split(";")]
    assert params[0] == "permessage-deflate" and "server_max_window_bits=15" in params[1:], (
        f"accepted without server_max_window_bits=15 (RFC 7692 §7.1.2.1): {got[0]!r}")

    async def main():
        ws = await ws_open(relay.port, "/test/echo", compression=None,
                           extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=15)])
        assert deflate_of(ws) is not None
        await ws.send(b"a" * 1000)
        assert await asyncio.wait_for(ws.recv(), 5) == b"a" * 1000
        await ws.close()

    run(main(), 20)


# Autobahn section 13's offers (client side), as `websockets` factories,
# and whether the relay can honour one of them.
SECTION_13_OFFERS = {
    "13.1 default offer": ([ClientPerMessageDeflateFactory()], True),
    "13.2 server_no_context_takeover": ([ClientPerMessageDeflateFactory(server_no_context_takeover=True)], True),
    "13.3 server_max_window_bits=9": ([ClientPerMessageDeflateFactory(server_max_window_bits=9)], False),
    "13.5 both": ([ClientPerMessageDeflateFactory(server_no_context_takeover=True, server_max_window_bits=9)], False),
    "client_max_window_bits=9": ([ClientPerMessageDeflateFactory(client_max_window_bits=9)], True),
    "client_no_context_takeover": ([ClientPerMessageDeflateFactory(client_no_context_takeover=True)], True),
    "13.7 three offers": ([ClientPerMessageDeflateFactory(server_no_context_takeover=True, server_max_window_bits=9),
                           ClientPerMessageDeflateFactory(server_no_context_takeover=True),
                           ClientPerMessageDeflateFactory()], True),
}


def json_text(rng: random.Random, size: int) -> str:
    """JSON text of `size` characters (some of them not ASCII)."""
    parts = []
    n = 0
    while n < size:
        rec = json.dumps({"id": rng.randint(0, 10**6), "name": rng.choice(CRATES), "ok": rng.random() < 0.9,
                          "path": f"src/{rng.choice(MODULES)}/mod.rs", "note": rng.choice(["ü", "é", "ok", "—", "日本"])},
                         ensure_ascii=False)
        parts.append(rec)
        n += len(rec)
    return ",".join(parts)[:size]


def test_echo_with_section_13_offers(start_relay):
    """Autobahn 13.*'s offers through the echo endpoint with `websockets`:
    an offer the relay can honour is accepted (with no context takeover both
    ways, whatever was asked), the others are declined and the connection
    works uncompressed. JSON text messages of 16 B to 128 KiB (compressed by
    the client, a 9-bit window where it offered one) come back exactly, and
    the relay compressed each echo of 64 B or more once."""
    relay = start_relay("--echo-endpoint")
    sizes = [16, 64, 256, 1024, 4096, 16384, 65536, 131072]

    async def main():
        rng = random.Random(13)
        for label, (factories, honoured) in SECTION_13_OFFERS.items():
            before = compression_stats(relay)["compressions"]
            ws = await ws_open(relay.port, "/test/echo", compression=None, extensions=factories)
            ext = deflate_of(ws)
            assert (ext is not None) == honoured, f"{label}: negotiated {ext}, expected honoured={honoured}"
            if ext is not None:
                # The relay answered no context takeover both ways.
                assert ext.remote_no_context_takeover and ext.local_no_context_takeover, f"{label}: {ext}"
            compressible = 0
            for size in sizes:
                for _ in range(3):
                    msg = json_text(rng, size)
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    assert got == msg, f"{label}: {size}-char text message came back different"
                    compressible += len(msg.encode()) >= MIN_SIZE
            await ws.close()
            after = compression_stats(relay)["compressions"]
            want = compressible if honoured else 0
            assert after - before == want, f"{label}: the relay compressed {after - before} echoes, expected {want}"

    run(main(), 40)


def corpus(kind: str, rng: random.Random, size: int) -> bytes | str:
    if kind == "terminal text":
        return terminal_chunk(rng, size)[:size].decode("utf-8", "ignore")
    if kind == "json":
        return json_text(rng, size)
    if kind == "random binary":
        return rng.randbytes(size)
    # Structured binary (a bitmap-like run of similar rows).
    row = bytes(rng.randrange(0, 16) * 16 for _ in range(64))
    return (row * (size // 64 + 1))[:size]


def test_echo_section_12_sizes_and_fragments(start_relay):
    """Autobahn 12.*'s matrix through the echo endpoint with a compressing
    `websockets` client: text and binary messages of 16 B to 128 KiB, whole
    and auto-fragmented into 256 B, 4 KiB and 32 KiB frames (a compressed
    message split over frames, RSV1 on the first only), come back exactly;
    the empty message too."""
    relay = start_relay("--echo-endpoint")
    sizes = [16, 64, 256, 1024, 4096, 16384, 65536, 131072]
    fragments = [None, 256, 4096, 32768]

    async def main():
        rng = random.Random(12)
        ws = await ws_open(relay.port, "/test/echo")
        assert deflate_of(ws) is not None, "the echo endpoint did not negotiate permessage-deflate"
        count = 0
        for kind in ("terminal text", "json", "random binary", "structured binary"):
            for size in sizes:
                for frag in fragments:
                    if frag is not None and frag >= size:
                        continue
                    for _ in range(2):
                        msg = corpus(kind, rng, size)
                        if frag is None:
                            await ws.send(msg)
                        else:
                            await ws.send([msg[i:i + frag] for i in range(0, len(msg), frag)])
                        got = await asyncio.wait_for(ws.recv(), 10)
                        assert got == msg, f"{kind} {size} B in {frag} B fragments came back different"
                        count += 1
        for empty in (b"", ""):
            await ws.send(empty)
            got = await asyncio.wait_for(ws.recv(), 5)
            assert got == empty, f"empty message {empty!r} came back as {got!r}"
        await ws.close()
        return count

    count = run(main(), 50)
    print(f"echoed {count} compressed messages")


# ---------------------------------------------------------------- fan-out


@pytest.fixture(params=["ws", "wss"])
def start_relay_ws_or_wss(request, start_relay):
    return over_transport(request, start_relay)


def test_compressed_and_plain_browsers_get_every_frame(start_relay_ws_or_wss):
    """Over ws:// and wss://, one pod, a compressing runner, a compressing and
    a plain browser, each behind a byte-counting proxy (TLS records, over
    wss): 300 Output messages of build output with
    ANSI colours (2-6 KB, every fifth a tiny one under 64 B) arrive byte for
    byte and in order on both; the compressing browser's socket carried
    fewer bytes: under 0.6 times the plain one's for this text. /stats
    counts one compression per message of 64 B or more, bytes_in exactly
    their sizes."""
    relay = start_relay_ws_or_wss()
    msgs = terminal_stream(300)
    large = [m for m in msgs if len(m) >= MIN_SIZE]

    async def main():
        pod = new_pod()
        proxy_c = await CountingProxy(relay.port).start()
        proxy_p = await CountingProxy(relay.port).start()
        runner = await runner_peer(relay, pod)
        compressed = await browser_peer(relay, pod, "compressing browser", port=proxy_c.port, user_id=1001)
        plain = await browser_peer(relay, pod, "plain browser", compression=None, port=proxy_p.port, user_id=1002)
        assert deflate_of(runner.ws) is not None, "the runner did not negotiate permessage-deflate"
        assert deflate_of(compressed.ws) is not None, "the compressing browser did not negotiate permessage-deflate"
        assert deflate_of(plain.ws) is None
        await wait_compression(relay, lambda c: c["connections"] == 2, "2 compressing connections")

        await runner.send(frame(OUTPUT, b"sync-marker"))
        for b in (compressed, plain):
            skipped, _ = await b.recv_until(lambda t, p: t == OUTPUT and p == b"sync-marker", what="sync marker")
            assert not skipped, f"{b.name}: frames before the marker: {[describe(*f) for f in skipped]}"
        before = compression_stats(relay)
        c0, p0 = proxy_c.down, proxy_p.down

        pacer = Pacer(window=512 * 1024)
        collectors = [Collector(b, msgs.__getitem__, len(msgs), pacer, frame_timeout=15) for b in (compressed, plain)]
        for m in msgs:
            await pacer.room_for(len(m))
            await runner.send(m)
        await asyncio.wait_for(asyncio.gather(*(c.task for c in collectors)), 60)
        c_bytes, p_bytes = proxy_c.down - c0, proxy_p.down - p0
        after = compression_stats(relay)

        for p in (compressed, plain, runner):
            await p.close()
        await proxy_c.close()
        await proxy_p.close()
        return c_bytes, p_bytes, before, after

    c_bytes, p_bytes, before, after = run(main(), 90)
    payload = sum(len(m) for m in msgs)
    ratio = c_bytes / p_bytes
    print(f"\n{'wss' if relay.tls else 'ws'}: {len(msgs)} messages, {payload} B of payload: plain browser's socket {p_bytes} B, "
          f"compressing browser's {c_bytes} B: ratio {ratio:.3f}")
    assert p_bytes >= payload, f"the plain browser's socket carried {p_bytes} B for {payload} B of messages"
    assert ratio < 0.6, f"compressed/plain bytes on the socket {ratio:.3f} (want < 0.6)"
    compressions = after["compressions"] - before["compressions"]
    bytes_in = after["bytes_in"] - before["bytes_in"]
    bytes_out = after["bytes_out"] - before["bytes_out"]
    assert compressions == len(large), f"{compressions} compressions for {len(large)} messages of >= {MIN_SIZE} B"
    assert bytes_in == sum(len(m) for m in large), f"bytes_in grew by {bytes_in}, messages {sum(len(m) for m in large)} B"
    assert 0 < bytes_out < c_bytes, f"bytes_out grew by {bytes_out}; the socket carried {c_bytes} B"


@pytest.mark.parametrize("min_size", [None, 200])
def test_rsv1_only_on_messages_of_the_minimum_size(start_relay, min_size):
    """A raw compressing browser reads the frames themselves: messages of at
    least `--compression-min-size` (64 by default; 200 here too) come with
    RSV1 and inflate alone, with a fresh decompressor, to the runner's
    message (each a sync-flushed DEFLATE stream whose 00 00 FF FF were
    removed, RFC 7692 §7.2.1: no final block, the form every client reads);
    smaller ones come as they are, RSV1 clear. Sizes are around
    the bound, and a message of 64 KiB."""
    bound = min_size or MIN_SIZE
    relay = start_relay(*(["--compression-min-size", str(min_size)] if min_size else []))
    rng = random.Random(3)
    sizes = [1, 2, bound - 2, bound - 1, bound, bound + 1, 1000, 65536]
    msgs = [frame(OUTPUT, terminal_chunk(rng, n)[:n - 1]) for n in sizes]
    assert [len(m) for m in msgs] == sizes

    async def main():
        pod = new_pod()
        runner = await runner_peer(relay, pod, compression=None)
        raw = await asyncio.to_thread(
            raw_upgrade, relay, relay_path("browser") + build_query(browser_token(pod)), "permessage-deflate")
        try:
            assert extensions_header(raw) == [ANSWER]
            await runner.send(frame(OUTPUT, b"marker"))
            b0, p = await asyncio.to_thread(recv_frame_rsv, raw, 5)
            assert (b0, p) == (0x82, frame(OUTPUT, b"marker")), (hex(b0), p)
            for m in msgs:
                await runner.send(m)
            wrong = []
            for m in msgs:
                b0, p = await asyncio.to_thread(recv_frame_rsv, raw, 5)
                if b0 & 0x0F != 0x2 or not b0 & 0x80 or b0 & 0x30:
                    wrong.append(f"{len(m)} B: first header byte 0x{b0:02x}")
                elif len(m) < bound:
                    if b0 & 0x40 or p != m:
                        wrong.append(f"{len(m)} B (under {bound}): RSV1={bool(b0 & 0x40)}, payload {p[:16]!r}")
                elif not b0 & 0x40:
                    wrong.append(f"{len(m)} B (at least {bound}): not compressed")
                else:
                    data, d = inflate_alone(p)
                    if data != m:
                        wrong.append(f"{len(m)} B: inflates to {len(data)} B {data[:16]!r}")
                    elif d.eof or d.unused_data:
                        wrong.append(f"{len(m)} B: not the sync-flush form (eof={d.eof}, "
                                     f"after it {d.unused_data!r})")
            assert not wrong, "\n".join(wrong)
        finally:
            raw.close()
            await runner.close()

    run(main(), 30)


FRAMES = 2000
PAYLOAD = b"x" * 100


async def publish_compressed(relay, browsers: int) -> tuple[int, int]:
    """2,000 frames of 101 B to `browsers` compressing browsers of a new pod:
    (compressions, slab allocations) while publishing."""
    pod = new_pod()
    runner = await runner_peer(relay, pod, compression=None)
    peers = [await browser_peer(relay, pod, f"b{i}", user_id=1000 + i) for i in range(browsers)]
    assert all(deflate_of(p.ws) is not None for p in peers)
    await asyncio.sleep(0.3)  # joins settle (handshakes, resync requests)
    compressions0 = metric(relay, "relay_compressions_total")
    slabs0 = metric(relay, "relay_slab_allocations_total")
    for _ in range(FRAMES):
        await runner.send(frame(OUTPUT, PAYLOAD))
    for p in peers:
        got = 0
        while got < FRAMES:
            t, payload = await p.recv(timeout=15)
            if t == OUTPUT:
                assert payload == PAYLOAD, f"{p.name}: {describe(t, payload)}"
                got += 1
    compressions = metric(relay, "relay_compressions_total") - compressions0
    slabs = metric(relay, "relay_slab_allocations_total") - slabs0
    for p in peers + [runner]:
        await p.ws.close()
    return compressions, slabs


def test_compressed_once_whatever_the_fan_out(start_relay):
    """2,000 Output frames of 101 B (over the 64 B minimum) to 1 and then to
    40 compressing browsers (one loop): relay_compressions_total grows by
    exactly 2,000 both times (once per frame, not per browser), and the slab
    allocations while publishing are about the same (not 40 times)."""
    relay = start_relay("--loops", "1", "--max-browsers-per-pod", "50")

    async def main():
        return await publish_compressed(relay, 1), await publish_compressed(relay, 40)

    (c1, s1), (c40, s40) = run(main(), 60)
    print(f"\nwhile publishing {FRAMES} frames: 1 browser {c1} compressions, {s1} slabs; "
          f"40 browsers {c40} compressions, {s40} slabs")
    assert c1 == FRAMES, f"1 browser: {c1} compressions for {FRAMES} frames"
    assert c40 == FRAMES, f"40 browsers: {c40} compressions for {FRAMES} frames"
    # At most an encoding per run of frames (a run is what one loop turn
    # read), plus the arena's chunks; 40 browsers share them. A copy per
    # browser would be 40 times as many.
    assert s1 <= FRAMES + 50, f"1 browser: {s1} slabs for {FRAMES} frames"
    assert s40 <= max(2 * s1, s1 + 100), f"1 browser: {s1} slabs; 40 browsers: {s40} slabs"


def test_compressed_once_per_loop(start_relay):
    """`--loops 4 --browser-placement accept`: 8 compressing browsers of one
    pod stay on the loops that accepted them; 500 frames reach each one
    exactly, and are compressed at least once and at most once per loop
    (not once per browser)."""
    relay = start_relay("--loops", "4", "--browser-placement", "accept")
    n = 500

    async def main():
        pod = new_pod()
        runner = await runner_peer(relay, pod, compression=None)
        peers = [await browser_peer(relay, pod, f"b{i}", user_id=1000 + i) for i in range(8)]
        await asyncio.sleep(0.3)
        c0 = metric(relay, "relay_compressions_total")
        msgs = [frame(OUTPUT, f"{i:05d} ".encode() + b"y" * 200) for i in range(n)]
        for m in msgs:
            await runner.send(m)
        for p in peers:
            for m in msgs:
                await p.expect_message(m, timeout=10)
        c = metric(relay, "relay_compressions_total") - c0
        for p in peers + [runner]:
            await p.ws.close()
        return c

    c = run(main(), 40)
    print(f"\n{n} frames to 8 browsers on 4 loops: {c} compressions")
    assert n <= c <= 4 * n, f"{c} compressions for {n} frames to 8 browsers on 4 loops"


def test_replayed_ring_is_compressed_once(start_relay):
    """A pod's Snapshot and 200 Output frames (600 KB of build output) are
    in its replay ring before any browser comes: three compressing browsers
    that attach one after the other each get them all, byte for byte; the
    first attach compresses each of them once, the next two compress
    nothing (the relay keeps the compressed ring). A plain browser gets
    the same frames."""
    from relay_client import snapshot

    relay = start_relay()

    async def main():
        pod = new_pod()
        runner = await runner_peer(relay, pod, compression=None)
        rng = random.Random(11)
        msgs = [snapshot("before any browser")] + [frame(OUTPUT, terminal_chunk(rng, 3000)) for _ in range(200)]
        for m in msgs:
            await runner.send(m)
        await runner.sync()
        counts = []
        for i, compression in enumerate(["deflate", "deflate", "deflate", None]):
            c0 = compression_stats(relay)["compressions"]
            b = await browser_peer(relay, pod, f"browser {i} ({compression})", compression=compression,
                                   user_id=1000 + i)
            for m in msgs:
                await b.expect_message(m, timeout=10)
            counts.append(compression_stats(relay)["compressions"] - c0)
        await runner.close()
        return counts, len(msgs)

    counts, n = run(main(), 40)
    print(f"\ncompressions while attaching (ring of {n} frames): {counts}")
    assert counts[0] == n, f"first compressing attach: {counts[0]} compressions for {n} frames"
    assert counts[1:] == [0, 0, 0], f"later attaches compressed again: {counts}"


# ------------------------------------------------------------------ inbound


def vm_hwm_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


LIMIT = 1 << 20


def test_deflate_bomb_is_closed_1009_within_the_bound(start_relay):
    """With `--max-message-size 1048576`: a browser message with RSV1 whose
    payload is DEFLATE of 64 MiB of zeros (about 64 KiB), whole and split
    over four frames, three times each, is answered Close 1009; the relay's
    resident memory (VmRSS, and its peak VmHWM) grows by no more than the
    bound plus a few MiB. A message that inflates to exactly the bound still
    reaches the runner; one byte more is 1009."""
    relay = start_relay("--max-message-size", str(LIMIT))
    pid = relay.proc.pid
    bomb = deflate_message(b"\x00" * (64 << 20), level=9)
    print(f"\nbomb: {len(bomb)} B inflating to 64 MiB")
    assert len(bomb) < LIMIT

    async def main():
        pod = new_pod()
        runner = await runner_peer(relay, pod, compression=None)
        path = relay_path("browser") + build_query(browser_token(pod))

        # Exactly the bound inflated, then one byte more.
        raw = await asyncio.to_thread(raw_upgrade, relay, path, "permessage-deflate")
        full = frame(INPUT, b"a" * (LIMIT - 1))
        raw.sock.sendall(client_frame(0x2, deflate_message(full), rsv1=True))
        while True:
            t, p = await runner.recv(timeout=10)
            if t != RESYNC:
                break
        assert t == INPUT and len(p) == LIMIT - 1 and p == full[1:], f"runner got {describe(t, p)}"
        raw.sock.sendall(client_frame(0x2, deflate_message(full + b"a"), rsv1=True))
        code, reason, _ = await asyncio.to_thread(expect_close, raw)
        assert code == 1009, f"a message inflating to the bound + 1: Close {code} {reason!r}"
        raw.close()

        rss0, hwm0 = vm_rss_bytes(pid), vm_hwm_bytes(pid)
        for attempt in range(3):
            for split in (1, 4):
                raw = await asyncio.to_thread(raw_upgrade, relay, path, "permessage-deflate")
                try:
                    step = -(-len(bomb) // split)
                    parts = [bomb[i:i + step] for i in range(0, len(bomb), step)]
                    wire = b"".join(
                        client_frame(0x2 if i == 0 else 0x0, part, fin=i == len(parts) - 1, rsv1=i == 0)
                        for i, part in enumerate(parts))
                    raw.sock.sendall(wire)
                    code, reason, _ = await asyncio.to_thread(expect_close, raw)
                    assert code == 1009, f"bomb in {split} frame(s), attempt {attempt}: Close {code} {reason!r}"
                finally:
                    raw.close()
        rss1, hwm1 = vm_rss_bytes(pid), vm_hwm_bytes(pid)
        # The relay still serves the pod.
        browser = await browser_peer(relay, pod, "browser after the bombs")
        await browser.send(frame(INPUT, b"still here" * 20))
        _, (t, p) = await runner.recv_until(lambda t, p: t == INPUT, what="input after the bombs")
        assert p == b"still here" * 20
        await browser.close()
        await runner.close()
        return rss0, rss1, hwm0, hwm1

    rss0, rss1, hwm0, hwm1 = run(main(), 60)
    mib = 1 << 20
    print(f"relay VmRSS {rss0 / mib:.1f} -> {rss1 / mib:.1f} MiB, VmHWM {hwm0 / mib:.1f} -> {hwm1 / mib:.1f} MiB")
    allowed = LIMIT + 6 * mib
    assert rss1 - rss0 <= allowed, f"VmRSS grew by {(rss1 - rss0) / mib:.1f} MiB over six bombs"
    assert hwm1 - hwm0 <= allowed, f"peak RSS grew by {(hwm1 - hwm0) / mib:.1f} MiB over six bombs"


def test_bad_compressed_messages_are_closed(start_relay):
    """Each on a new compressing connection (browser path, and echo for
    text): DEFLATE data that is not valid (a block of the reserved type) ->
    1007; compressed text that inflates to invalid UTF-8 -> 1007; RSV1 on a
    continuation frame -> 1002; RSV1 on a Ping -> 1002; RSV1 on the
    uncompressed browser connection -> 1002. And what must pass does: a
    compressed message split over three frames (RSV1 on the first only)
    reaches the runner whole, also with a Ping between its frames (answered
    at once), and so does one ending with a final DEFLATE block; an empty compressed message (a single 0x00,
    RFC 7692 §7.2.3.6) and valid compressed text come back from the echo
    endpoint."""
    relay = start_relay("--echo-endpoint")
    pod = new_pod()
    browser_path = relay_path("browser") + build_query(browser_token(pod))
    text = "grüße — ok ".encode() * 20
    bad_utf8 = b"valid start " * 10 + b"\xc3\x28 then more" * 5

    cases = [
        # (name, path, offer, wire bytes, expected close code)
        ("invalid DEFLATE (reserved block type)", browser_path, "permessage-deflate",
         client_frame(0x2, b"\xff\xff\xff\xff\xff\xff", rsv1=True), 1007),
        ("invalid DEFLATE (stored block with bad length)", browser_path, "permessage-deflate",
         client_frame(0x2, b"\x00\x05\x00\x00\x00abcde", rsv1=True), 1007),
        ("text inflating to invalid UTF-8", "/test/echo", "permessage-deflate",
         client_frame(0x1, deflate_message(bad_utf8), rsv1=True), 1007),
        ("fragmented text inflating to invalid UTF-8", "/test/echo", "permessage-deflate",
         client_frame(0x1, deflate_message(bad_utf8)[:10], fin=False, rsv1=True)
         + client_frame(0x0, deflate_message(bad_utf8)[10:]), 1007),
        ("RSV1 on a continuation frame", browser_path, "permessage-deflate",
         client_frame(0x2, deflate_message(frame(INPUT, b"y" * 300))[:20], fin=False, rsv1=True)
         + client_frame(0x0, deflate_message(frame(INPUT, b"y" * 300))[20:], rsv1=True), 1002),
        ("RSV1 on a continuation of an uncompressed message", browser_path, "permessage-deflate",
         client_frame(0x2, frame(INPUT, b"z" * 10), fin=False) + client_frame(0x0, b"z" * 10, rsv1=True), 1002),
        ("RSV1 on a Ping", browser_path, "permessage-deflate", client_frame(0x9, b"", rsv1=True), 1002),
        ("RSV1 without the extension", browser_path, None,
         client_frame(0x2, deflate_message(frame(INPUT, b"w" * 100)), rsv1=True), 1002),
    ]
    wrong = []
    for name, path, offer, wire, want in cases:
        raw = raw_upgrade(relay, path, offer)
        try:
            assert extensions_header(raw) == ([ANSWER] if offer else [])
            raw.sock.sendall(wire)
            code, reason, seen = expect_close(raw)
            if code != want:
                wrong.append(f"{name}: Close {code} {reason!r}, expected {want}")
            elif seen:
                wrong.append(f"{name}: frames before the Close: {[(hex(b), p[:20]) for b, p in seen]}")
        finally:
            raw.close()

    async def passing():
        runner = await runner_peer(relay, pod, compression=None)
        raw = await asyncio.to_thread(raw_upgrade, relay, browser_path, "permessage-deflate")
        msg = frame(INPUT, terminal_chunk(random.Random(5), 5000))
        z = deflate_message(msg)
        parts = [z[:7], z[7:len(z) // 2], z[len(z) // 2:]]
        raw.sock.sendall(client_frame(0x2, parts[0], fin=False, rsv1=True) + client_frame(0x0, parts[1], fin=False)
                         + client_frame(0x0, parts[2]))
        _, (t, p) = await runner.recv_until(lambda t, p: t == INPUT, timeout=10, what="the fragmented Input")
        assert frame(t, p) == msg, f"fragmented compressed Input arrived as {describe(t, p)}"
        # A Ping between the fragments is answered; the message still arrives whole.
        raw.sock.sendall(client_frame(0x2, parts[0], fin=False, rsv1=True) + client_frame(0x9, b"between")
                         + client_frame(0x0, parts[1], fin=False) + client_frame(0x0, parts[2]))
        b0, pong = await asyncio.to_thread(recv_frame_rsv, raw, 5)
        assert (b0, pong) == (0x8A, b"between"), f"answer to the Ping: 0x{b0:02x} {pong!r}"
        _, (t, p) = await runner.recv_until(lambda t, p: t == INPUT, timeout=10, what="the Input around a Ping")
        assert frame(t, p) == msg, f"compressed Input around a Ping arrived as {describe(t, p)}"
        # Compressed data ending with a final block (RFC 7692 §7.2.3.3), with
        # and without the 0x00 after it.
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        final = c.compress(msg) + c.flush(zlib.Z_FINISH)
        for payload in (final + b"\x00", final):
            raw.sock.sendall(client_frame(0x2, payload, rsv1=True))
            _, (t, p) = await runner.recv_until(lambda t, p: t == INPUT, timeout=10, what="the BFINAL Input")
            assert frame(t, p) == msg, f"Input in a final block arrived as {describe(t, p)}"
        raw.close()
        await runner.close()

        echo = await asyncio.to_thread(raw_upgrade, relay, "/test/echo", "permessage-deflate")
        try:
            for op, data in ((0x2, b""), (0x1, b""), (0x1, text)):
                echo.sock.sendall(client_frame(op, deflate_message(data), rsv1=True))
                b0, p = await asyncio.to_thread(recv_frame_rsv, echo, 5)
                got = inflate_alone(p)[0] if b0 & 0x40 else p
                assert b0 & 0x0F == op and b0 & 0x80 and got == data, \
                    f"echo of compressed {'text' if op == 1 else 'binary'} {data[:10]!r}: 0x{b0:02x} {p[:20]!r}"
        finally:
            echo.close()

    run(passing(), 30)
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------ HTTP/2


class InflatingParser:
    """Stands in for an H2Stream's WsParser on a compressing stream: the
    relay's frames reassembled into messages, a message whose first frame
    has RSV1 inflated alone; `compressed` records RSV1 per data message."""

    def __init__(self, name: str):
        from relay_client import RawMessage
        self.RawMessage = RawMessage
        self.name = name
        self.buf = bytearray()
        self.parts: list[bytes] = []
        self.first: int | None = None
        self.compressed: list[bool] = []

    def feed(self, data: bytes) -> list:
        self.buf += data
        out = []
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            assert not b1 & 0x80, f"{self.name}: masked frame from the relay"
            n, hlen = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, hlen = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, hlen = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < hlen + n:
                break
            payload = bytes(self.buf[hlen:hlen + n])
            del self.buf[:hlen + n]
            op = b0 & 0x0F
            assert not b0 & 0x30, f"{self.name}: RSV2/RSV3 set (0x{b0:02x})"
            if op >= 8:
                assert not b0 & 0x40, f"{self.name}: RSV1 on a control frame (0x{b0:02x})"
                out.append(self.RawMessage(op, payload))
                continue
            if op != 0:
                assert self.first is None, f"{self.name}: new message inside a fragmented one"
                self.first = b0
            else:
                assert not b0 & 0x40, f"{self.name}: RSV1 on a continuation frame"
            self.parts.append(payload)
            if b0 & 0x80:
                whole = b"".join(self.parts)
                rsv1 = bool(self.first & 0x40)
                if rsv1:
                    whole = inflate_alone(whole)[0]
                self.compressed.append(rsv1)
                out.append(self.RawMessage(self.first & 0x0F, whole))
                self.parts, self.first = [], None
        return out


def test_http2_websockets_compress_too(start_relay):
    """RFC 8441 WebSockets: a CONNECT offering permessage-deflate is answered
    200 with exactly the relay's answer (none for an offer it cannot honour,
    or no offer); on the compressing stream the runner's messages of 64 B or
    more come with RSV1 and inflate alone, smaller ones plain; the browser's
    compressed Input, whole and split over frames, reaches the runner
    inflated; a stream without the extension gets plain frames."""
    pytest.importorskip("h2")
    from h2_client import H2Client, H2Peer

    relay = start_relay()
    pod = new_pod()
    rng = random.Random(8)
    msgs = [frame(OUTPUT, terminal_chunk(rng, 4000)), frame(OUTPUT, b"tiny"),
            frame(OUTPUT, terminal_chunk(rng, 20000)), frame(OUTPUT, b"x" * (MIN_SIZE - 1))]
    input_msg = frame(INPUT, terminal_chunk(rng, 3000))

    async def main():
        runner = await runner_peer(relay, pod)
        client = H2Client(relay)
        try:
            streams = {}
            for label, offer, user in (("compressing", "permessage-deflate; client_max_window_bits", 1001),
                                       ("declined", "permessage-deflate; server_max_window_bits=10", 1002),
                                       ("no offer", None, 1003)):
                hdrs = [("sec-websocket-extensions", offer)] if offer else []
                p = relay_path("browser") + build_query(browser_token(pod, user_id=user))
                st = client.connect_ws(p, headers=hdrs, name=f"h2 {label}")
                assert st.status == 200, f"{label}: CONNECT answered {st.status} {st.text()!r}"
                got = st.headers.get("sec-websocket-extensions")
                want = ANSWER if label == "compressing" else None
                assert got == want, f"{label}: sec-websocket-extensions {got!r}, expected {want!r}"
                if label == "compressing":
                    st.parser = InflatingParser(st.name)
                streams[label] = H2Peer(st, st.name, "browser")
            await wait_compression(relay, lambda c: c["connections"] == 2, "the runner and one h2 stream compressing")
            for m in msgs:
                await runner.send(m)
            for label, peer in streams.items():
                for m in msgs:
                    while True:
                        t, p = await asyncio.to_thread(peer.recv_raw, 10)
                        if t == OUTPUT:
                            break
                    assert frame(t, p) == m, f"{label}: expected {describe(m[0], m[1:])}, got {describe(t, p)}"
            flags = streams["compressing"].stream.parser.compressed
            assert flags == [len(m) >= MIN_SIZE for m in msgs], f"RSV1 per message {flags} for sizes {[len(m) for m in msgs]}"

            st = streams["compressing"].stream
            z = deflate_message(input_msg)
            st.send_data(client_frame(0x2, z, rsv1=True))
            st.send_data(client_frame(0x2, z[:9], fin=False, rsv1=True) + client_frame(0x0, z[9:]))
            for i in range(2):
                _, (t, p) = await runner.recv_until(lambda t, p: t == INPUT, timeout=10, what=f"h2 Input {i}")
                assert frame(t, p) == input_msg, f"compressed h2 Input {i} arrived as {describe(t, p)}"
        finally:
            client.close()
            await runner.close()

    run(main(), 30)


# ---------------------------------------------------------------- Chromium


def test_chromium_terminal_negotiates_compression(tmp_path):
    """The dev terminal page in headless Chromium: its WebSocket's handshake
    answer (from Chromium's own network log) carries the relay's
    permessage-deflate answer; while the page is open /stats counts one more
    compressing connection than before it; typing round-trips (`echo`), and
    a command with a lot of output (`seq 1 3000`) is on the screen to its
    last line while the relay's compression counters grow."""
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from test_browser_terminal import CHROMEDRIVER, CHROMIUM, ROWS_JS, DevRelay, drive_terminal

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} is not installed")
    dev = DevRelay(tmp_path)
    driver = None
    try:
        dev.page_url()  # the relay is up, its demo pod's runner attached

        def dev_stats() -> dict:
            with urllib.request.urlopen(f"http://{HOST}:{dev.port}/stats", timeout=5) as resp:
                return json.loads(resp.read())["compression"]

        before = dev_stats()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,600",
                    "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                                  options=options)
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)

        drive_terminal(dev, driver, tmp_path)      # the page, the prompt, `echo` round trip

        answers = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.webSocketHandshakeResponseReceived":
                headers = msg["params"]["response"].get("headers", {})
                answers.append({k.lower(): v for k, v in headers.items()}.get("sec-websocket-extensions"))
        print(f"\nChromium's WebSocket handshake answers: Sec-WebSocket-Extensions {answers}")
        assert answers, "no WebSocket handshake in Chromium's network log"
        assert answers[-1] == ANSWER, f"the page's WebSocket was answered {answers[-1]!r}"

        during = dev_stats()
        assert during["connections"] >= before["connections"] + 1, (
            f"/stats compression while the page is open {during}, before it {before}")

        textarea = driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
        textarea.send_keys("seq 1 3000" + Keys.ENTER)
        rows: list[str] = []

        def last_line_shown(_d) -> bool:
            nonlocal rows
            rows = driver.execute_script(ROWS_JS) or []
            return any(r.strip() == "3000" for r in rows)

        try:
            WebDriverWait(driver, 20, poll_frequency=0.1).until(last_line_shown)
        except TimeoutException:
            pytest.fail("`seq 1 3000`'s last line never appeared:\n" + "\n".join(rows)
                        + f"\nrelay stderr:\n{dev.stderr()[-3000:]}")
        after = dev_stats()
        print(f"compression before the page {before}, with it {during}, after `seq` {after}")
        assert after["compressions"] > during["compressions"], f"no compression of the output: {during} -> {after}"
        assert after["bytes_in"] - during["bytes_in"] >= len("\n".join(str(i) for i in range(1, 3001))) // 2, \
            f"compressed less than the output of seq: {during} -> {after}"
        assert after["bytes_out"] - during["bytes_out"] < after["bytes_in"] - during["bytes_in"]
    finally:
        if driver is not None:
            driver.quit()
        lingering = dev.stop()
        assert not lingering, f"processes left after stopping the dev relay (killed now): {lingering}"
