"""Read-only viewers: `scope: "read"` (docs/protocol.md §9, Read-only viewers)."""

from relay_client import (
    ACP_COMMAND, ERROR, INPUT, OUTPUT, POSITION, RESYNC, describe, frame, new_pod, open_browser,
    open_runner, parse_error, resize, run, snapshot,
)

UNKNOWN = 0x7E  # not one of the four refused types: forwarded, used as an end marker

REFUSED = [
    frame(INPUT, b"typed by a viewer"),
    resize(120, 40),
    frame(RESYNC),
    frame(ACP_COMMAND, b'{"cmd":"prompt","text":"viewer"}'),
]


def test_read_only_browser_cannot_type(start_relay):
    """Input, Resize, Resync and AcpCommand from `scope: read` browsers (plain
    and ext) never reach the runner, while the same frames from a normal
    browser do; the ext viewer gets 0x24 Error 403, the plain one gets nothing.

    Each sender ends with a frame of an unknown type (forwarded, per the
    contract): once the runner has it, everything that browser sent before has
    been routed or dropped. A Snapshot is cached first, so the relay itself has
    no reason to send the runner a Resync."""
    relay = start_relay()
    snap = snapshot("s1")

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        await runner.send(snap)
        await runner.sync()
        viewer = await open_browser(relay, pod, scope="read", name="viewer", user_id=2001)
        viewer_ext = await open_browser(relay, pod, scope="read", ext=True, name="viewer-ext", user_id=2002)
        writer = await open_browser(relay, pod, name="writer", user_id=2003)
        for b in (viewer, viewer_ext, writer):
            await b.expect_message(snap)
        await viewer_ext.expect(POSITION)

        async def runner_until_marker(marker: bytes):
            frames = []
            while True:
                t, p = await runner.recv(timeout=5)
                if t == UNKNOWN and p == marker:
                    return frames
                frames.append((t, p))

        for msg in REFUSED:
            await viewer.send(msg)
        await viewer.send(frame(UNKNOWN, b"viewer-done"))
        leaked = await runner_until_marker(b"viewer-done")
        assert not leaked, f"frames of a read-only browser reached the runner: {[describe(*f) for f in leaked]}"

        for msg in REFUSED:
            await viewer_ext.send(msg)
        await viewer_ext.send(frame(UNKNOWN, b"viewer-ext-done"))
        leaked = await runner_until_marker(b"viewer-ext-done")
        assert not leaked, f"frames of an ext read-only browser reached the runner: {[describe(*f) for f in leaked]}"
        _, (_, err) = await viewer_ext.recv_until(lambda t, p: t == ERROR, what="0x24 Error")
        code, reason = parse_error(err)
        assert code == 403, (code, reason)

        for msg in REFUSED:
            await writer.send(msg)
        await writer.send(frame(UNKNOWN, b"writer-done"))
        passed = await runner_until_marker(b"writer-done")
        assert [frame(t, p) for t, p in passed] == REFUSED, [describe(*f) for f in passed]

        # Nothing else reached the browsers: their next frame is the runner's.
        await runner.send(frame(OUTPUT, b"end"))
        await viewer.expect(OUTPUT, b"end")
        await writer.expect(OUTPUT, b"end")
        skipped, _ = await viewer_ext.recv_until(lambda t, p: t == OUTPUT and p == b"end", what="end")
        for t, p in skipped:
            assert t == ERROR and parse_error(p)[0] == 403, describe(t, p)

    run(main(), timeout=30)
