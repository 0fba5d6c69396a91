#!/usr/bin/env python3
"""Writes the seeds of Fuzz/corpus/h2 and Fuzz/corpus/grpc (standard library only).

    python3 Fuzz/corpus/make-h2-grpc-seeds.py

fuzz-h2 inputs: byte 0 options (bit 0: the harness prepends the client
preface), bytes 1-8 the split seed, then client bytes. fuzz-grpc inputs:
byte 0 the limit, byte 1 the number of chunk sizes, the sizes, the stream.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def write(target: str, name: str, data: bytes) -> None:
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# HTTP/2, by hand.

def frame(type_: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value: int, prefix: int, high: int = 0) -> bytes:
    top = (1 << prefix) - 1
    if value < top:
        return bytes([high | value])
    out = bytearray([high | top])
    value -= top
    while value >= 128:
        out.append(value % 128 | 0x80)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(n), 7) + n + hpack_int(len(v), 7) + v


def block(fields) -> bytes:
    return b"".join(literal(n, v) for n, v in fields)


SETTINGS = frame(0x4, 0, 0)
SETTINGS_ACK = frame(0x4, 1, 0)
GET = [(":method", "GET"), (":scheme", "https"), (":path", "/health"), (":authority", "relay.test")]
POST = [(":method", "POST"), (":scheme", "https"), (":path", "/relay.v1.Relay/Attach"),
        (":authority", "relay.test"), ("content-type", "application/grpc"), ("te", "trailers")]
CONNECT = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
           (":path", "/ws/attach"), (":authority", "relay.test"), ("sec-websocket-version", "13")]


def headers(stream: int, fields, end: bool = False) -> bytes:
    return frame(0x1, 0x4 | (1 if end else 0), stream, block(fields))


def data(stream: int, payload: bytes, end: bool = False) -> bytes:
    return frame(0x0, 1 if end else 0, stream, payload)


def h2(name: str, options: int, seed: int, stream: bytes) -> None:
    write("h2", name, bytes([options]) + struct.pack(">Q", seed) + stream)


def grpc_message(payload: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


def frame_message(payload: bytes) -> bytes:
    """relay.v1.Frame { data = payload } (field 1, wire type 2)."""
    return b"\x0a" + varint(len(payload)) + payload if payload else b""


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def main() -> None:
    start = SETTINGS + SETTINGS_ACK
    h2("seed-get", 0x01, 1, start + headers(1, GET, end=True))
    h2("seed-get-own-preface", 0x00, 2, PREFACE + start + headers(1, GET, end=True))
    h2("seed-post-data-trailers", 0x01, 3, start + headers(1, POST)
       + data(1, grpc_message(frame_message(b"hello"))) + headers(1, [("x-trailer", "1")], end=True))
    h2("seed-extended-connect", 0x01, 4, start + headers(1, CONNECT) + data(1, b"\x82\x81\x00\x00\x00\x00A")
       + frame(0x3, 0, 1, struct.pack(">I", 8)))
    h2("seed-control-frames", 0x21, 5, start + frame(0x6, 0, 0, b"12345678") + frame(0x2, 0, 3, b"\x00\x00\x00\x01\x0f")
       + frame(0x8, 0, 0, struct.pack(">I", 1000)) + headers(1, GET) + frame(0x8, 0, 1, struct.pack(">I", 1))
       + frame(0x3, 0, 1, struct.pack(">I", 8)) + frame(0x7, 0, 0, struct.pack(">II", 0, 0)))
    full = block(GET + [("x-fill", "f" * 40)])
    pieces = [full[i:i + 12] for i in range(0, len(full), 12)]
    cont = frame(0x1, 0x1, 1, pieces[0]) + b"".join(
        frame(0x9, 0x4 if i == len(pieces) - 1 else 0, 1, p) for i, p in enumerate(pieces[1:], 1))
    h2("seed-continuations", 0x03, 6, start + cont)
    h2("seed-rapid-reset-small", 0x03, 7, start + b"".join(
        headers(2 * i + 1, GET, end=True) + frame(0x3, 0, 2 * i + 1, struct.pack(">I", 8)) for i in range(8)))
    h2("seed-window-small-body", 0x1F, 8, frame(0x4, 0, 0, struct.pack(">HI", 4, 10)) + SETTINGS_ACK
       + headers(1, POST) + data(1, b"\x00" * 40) + data(1, b"", end=True) + frame(0x8, 0, 1, struct.pack(">I", 100)))
    h2("seed-unknown-and-big-frame", 0x01, 9, start + frame(0xFA, 0xFF, 0, b"xyz") + headers(1, POST)
       + struct.pack(">I", 16385)[1:] + b"\x00\x00\x00\x00\x00\x01")
    h2("seed-refused-output", 0x49, 10, start + headers(1, GET, end=True) + headers(3, POST)
       + data(3, b"abc", end=True) + frame(0x6, 0, 0, b"abcdefgh"))

    # gRPC: limit, number of sizes, sizes, stream.
    def grpc(name: str, limit: int, sizes, stream: bytes) -> None:
        write("grpc", name, bytes([limit, len(sizes)]) + bytes(sizes) + stream)

    hello = grpc_message(frame_message(b"hello"))
    grpc("seed-one-message", 64, [], hello)
    grpc("seed-many-split", 64, [1, 3, 7, 0, 2], hello + grpc_message(b"") + grpc_message(frame_message(b"x" * 20)) + hello)
    grpc("seed-too-large", 16, [4], hello + grpc_message(b"y" * 17))
    grpc("seed-compressed", 64, [2], hello + grpc_message(b"z", flag=1))
    grpc("seed-unknown-fields", 255, [5, 5], grpc_message(
        b"\x10\x96\x01" + b"\x19" + bytes(8) + b"\x25" + bytes(4) + b"\x2a\x02ab" + b"\x0a\x02cd"))
    grpc("seed-truncated-field", 64, [], grpc_message(b"\x0a\x05abc"))
    grpc("seed-partial-tail", 64, [3], hello + b"\x00\x00\x00")


if __name__ == "__main__":
    main()
