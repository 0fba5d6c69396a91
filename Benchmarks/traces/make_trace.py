#!/usr/bin/env python3
"""Records a terminal session's output as the relay's runner would send it,
and writes it as the fixture Benchmarks/traces/terminal.trace.

An interactive bash runs in a pseudo-terminal (120×40, TERM=xterm-256color,
a coloured prompt, LS_COLORS from dircolors). The script types each command
into it one key at a time (as a person would: every key comes back as its
echo) and reads the master side as a runner does, `read(master, 4096)` as
soon as it is readable: every read is one chunk, and one chunk is one runner
frame (`[0x02 Output][chunk]`) in the benchmarks. The session:

- a few short commands (`cd`, `pwd`, `echo`, `uname`): typing echoes and
  prompts, the small frames of interactive use;
- `ls -laR --color=always /usr/share/doc | head -c N`: a long coloured
  listing (bulk output, reads of a full PTY buffer);
- `git log --color=always --stat -n 40` of this checkout;
- a compiler-like build log: `gcc -v` compiling a file, `gcc
  -fdiagnostics-color=always -Wall -Wextra -Wconversion -Wsign-conversion`
  warnings (colours, carets, source lines), and `python3 -m compileall -f`
  over /usr/lib/python3/dist-packages (its .pyc files go to a temporary
  PYTHONPYCACHEPREFIX: nothing on the system is written);
- `top -d 0.25 -n 8`: a full-screen program redrawing with cursor motion.

Fixture format (all integers big-endian):

    b"RELAYTRACE1\\n"  magic (12 bytes)
    u32 n             length of the JSON header that follows
    n bytes           JSON: {"created", "host", "pty": [cols, rows],
                      "segments": [{"name", "command", "first", "count",
                      "bytes"}], "chunks", "bytes"}
    then per chunk:   u32 length, the chunk's bytes (no type byte)

The committed fixture is kept under 1 MiB (`--max-bytes`): the listing is cut
with head -c, and the session stops taking chunks once the budget is spent.
`read_trace(path)` returns (header, [bytes, ...]).

Usage: python3 Benchmarks/traces/make_trace.py [--out PATH] [--max-bytes N]
"""
import argparse, datetime, fcntl, json, os, pty, re, select, shutil, signal, socket, struct, subprocess, sys, tempfile, termios, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAGIC = b"RELAYTRACE1\n"
COLS, ROWS = 120, 40
READ_SIZE = 4096
# How the prompt (PS1 below) ends: the session is idle at it.
PROMPT_END = b"\x1b[0m$ "


def read_trace(path):
    """(header dict, list of chunks) of a fixture written by this script."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path}: not a relay trace")
    off = len(MAGIC)
    (n,) = struct.unpack_from(">I", data, off)
    off += 4
    header = json.loads(data[off:off + n])
    off += n
    chunks = []
    while off < len(data):
        (k,) = struct.unpack_from(">I", data, off)
        off += 4
        chunks.append(data[off:off + k])
        off += k
    return header, chunks


class Session:
    """An interactive bash on a PTY; every read of the master is recorded."""

    def __init__(self, env, budget):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.chunks = []
        self.bytes = 0
        self.budget = budget
        self.full = False
        self.tail = b""

    def pump(self, timeout):
        """Reads whatever the master has within `timeout` s; True if anything came."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.fd, READ_SIZE)
        except OSError:
            return False
        if not chunk:
            return False
        self.tail = (self.tail + chunk)[-256:]
        if not self.full and self.bytes + len(chunk) + 4 <= self.budget:
            self.chunks.append(chunk)
            self.bytes += len(chunk) + 4
        else:
            self.full = True
        return True

    def settle(self, quiet=0.4, limit=120):
        """Reads until the prompt is back and nothing more comes for `quiet` s."""
        end = time.time() + limit
        while time.time() < end:
            if not self.pump(quiet) and self.tail.endswith(PROMPT_END):
                return
        print(f"warning: no prompt after {limit} s", file=sys.stderr)

    def type(self, command, key_delay=0.012):
        """Types `command` one key at a time (each key's echo is read), then Enter."""
        for ch in command:
            os.write(self.fd, ch.encode())
            t = time.time() + key_delay
            while time.time() < t:
                self.pump(max(0.0, t - time.time()))
        os.write(self.fd, b"\r")

    def close(self):
        os.write(self.fd, b"exit\r")
        try:
            while self.pump(1.0):
                pass
        finally:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "terminal.trace"))
    ap.add_argument("--max-bytes", type=int, default=1_000_000, help="fixture size budget (default 1,000,000)")
    ap.add_argument("--ls-bytes", type=int, default=420_000, help="head -c of the listing")
    opts = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="make-trace-")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TERM": "xterm-256color", "LANG": "C.UTF-8",
           "COLUMNS": str(COLS), "LINES": str(ROWS), "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache"),
           "GIT_PAGER": "cat", "PAGER": "cat",
           "PS1": r"\[\e[1;32m\]dev@relay-host\[\e[0m\]:\[\e[1;34m\]\w\[\e[0m\]$ "}
    dc = subprocess.run(["dircolors", "-b"], capture_output=True, text=True).stdout
    m = re.search(r"LS_COLORS='([^']*)'", dc)
    if m:
        env["LS_COLORS"] = m.group(1)
    # A C file for the compiler's warnings: the floor program of these benchmarks.
    warn_src = os.path.join(ROOT, "Benchmarks/floor/loopback_floor.c")
    one_src = os.path.join(tmp, "hello.c")
    with open(one_src, "w") as f:
        f.write("#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")
    header_budget = 4096
    s = Session(env, opts.max_bytes - len(MAGIC) - 4 - header_budget)
    segments = []

    def run(name, command, interactive_delay=0.012):
        first = len(s.chunks)
        before = s.bytes
        s.type(command, interactive_delay)
        s.settle()
        segments.append({"name": name, "command": command, "first": first, "count": len(s.chunks) - first,
                         "bytes": s.bytes - before - 4 * (len(s.chunks) - first)})
        print(f"{name}: {len(s.chunks) - first} chunks, {segments[-1]['bytes']:,} B"
              + ("  (budget spent: later output not kept)" if s.full else ""), file=sys.stderr)

    try:
        s.settle(quiet=0.5)
        start = len(s.chunks)
        segments.append({"name": "prompt", "command": "", "first": 0, "count": start,
                         "bytes": sum(len(c) for c in s.chunks)})
        run("interactive", f"cd {tmp}")
        run("interactive", "pwd")
        run("interactive", "echo \"building $(uname -m) on $(uname -s)\"")
        run("interactive", "ls -la --color=auto")
        run("listing", f"ls -laR --color=always /usr/share/doc | head -c {opts.ls_bytes}", 0.004)
        run("interactive", "clear")
        run("git log", f"git -C {ROOT} log --color=always --stat -n 40", 0.004)
        run("build log", f"gcc -v -O2 -c -o {tmp}/hello.o {one_src}", 0.004)
        run("build log", f"gcc -fdiagnostics-color=always -Wall -Wextra -Wconversion -Wsign-conversion "
                         f"-O2 -fsyntax-only {warn_src}", 0.004)
        run("build log", "python3 -m compileall -f /usr/lib/python3/dist-packages", 0.004)
        run("top", "top -d 0.25 -n 8", 0.004)
        run("interactive", "echo done")
    finally:
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)
    # Merge consecutive segments of the same name.
    merged = []
    for seg in segments:
        if merged and merged[-1]["name"] == seg["name"]:
            merged[-1]["count"] += seg["count"]
            merged[-1]["bytes"] += seg["bytes"]
            merged[-1]["command"] += ("; " if merged[-1]["command"] else "") + seg["command"]
        else:
            merged.append(dict(seg))
    chunks = s.chunks
    header = {"created": datetime.datetime.now().isoformat(timespec="seconds"), "host": socket.gethostname(),
              "pty": [COLS, ROWS], "read_size": READ_SIZE, "segments": merged,
              "chunks": len(chunks), "bytes": sum(len(c) for c in chunks),
              "generator": "Benchmarks/traces/make_trace.py"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    out = bytearray(MAGIC + struct.pack(">I", len(hj)) + hj)
    for c in chunks:
        out += struct.pack(">I", len(c)) + c
    with open(opts.out, "wb") as f:
        f.write(out)
    sizes = sorted(len(c) for c in chunks)
    print(f"wrote {opts.out}: {len(chunks)} chunks, {header['bytes']:,} B of output, file {len(out):,} B; "
          f"chunk sizes p10/p50/p90/max {sizes[len(sizes) // 10]}/{sizes[len(sizes) // 2]}/{sizes[9 * len(sizes) // 10]}/{sizes[-1]}; "
          f"{sum(1 for x in sizes if x + 1 < 64)} chunks under 64 B as frames", file=sys.stderr)


if __name__ == "__main__":
    main()
