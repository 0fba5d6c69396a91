// reactor-echo: a Reactor echo server on one event loop and a pipelining
// client on another, over loopback, for a fixed time.
//
//   reactor-echo [--connections N] [--size BYTES|NK] [--window MESSAGES]
//                [--seconds D] [--verify]
//
// Each of N client connections keeps `window` messages of `size` bytes in
// flight: it queues a message (a slice of one shared slab, by reference)
// whenever fewer than `window` are unanswered. The server queues every read
// back by reference (zero copy), like Tests/ReactorTests' EchoHandler. TCP has
// no message boundaries, so a message counts as echoed when its last byte
// is back. Printed once per second and at the end: messages/s and MB/s
// (10^6 bytes, one way; the server loop reads and writes that much each), each
// loop's busy share (time outside epoll_wait: the side near 100% is the
// bottleneck) and the process's CPU time per million messages.
import Glibc
import Synchronization
import Reactor

struct Options: Sendable {
    var connections = 1
    var size = 64
    var window = 32
    var seconds = 10
    var verify = false
}

/// Writes a line to standard error (unbuffered).
func complain(_ line: String) {
    var s = line + "\n"
    s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func usage(_ message: String? = nil) -> Never {
    if let message { complain("reactor-echo: \(message)") }
    complain("usage: reactor-echo [--connections N] [--size BYTES|NK] [--window MESSAGES] [--seconds D] [--verify]")
    exit(2)
}

func parseSize(_ s: String) -> Int? {
    let lower = s.lowercased()
    for (suffix, factor) in [("kib", 1024), ("k", 1024), ("mib", 1 << 20), ("m", 1 << 20), ("b", 1)] where lower.hasSuffix(suffix) {
        return Int(lower.dropLast(suffix.count)).map { $0 * factor }
    }
    return Int(lower)
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ name: String) -> String {
        guard let v = args.popFirst() else { usage("\(name) needs a value") }
        return v
    }
    func number(_ name: String, _ parse: (String) -> Int? = { Int($0) }) -> Int {
        guard let n = parse(value(name)) else { usage("bad value for \(name)") }
        return n
    }
    while let a = args.popFirst() {
        switch a {
        case "--connections", "-c": o.connections = number(a)
        case "--size", "-s": o.size = number(a, parseSize)
        case "--window", "-w": o.window = number(a)
        case "--seconds", "-d": o.seconds = number(a)
        case "--verify": o.verify = true
        case "--help", "-h": usage()
        default: usage("unknown argument \(a)")
        }
    }
    guard o.connections >= 1, o.size >= 1, o.window >= 1, o.seconds >= 1 else { usage("values must be positive") }
    return o
}

/// Counters written by the client loop and read by the main thread.
final class Stats: Sendable {
    let receivedBytes = Atomic<Int>(0)
    let connected = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    let mismatches = Atomic<Int>(0)
    let stopRequested = Atomic<Bool>(false)
}

@inline(__always)
func patternByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 31 &+ 7) }

/// Echoes every read back by reference. At the outbound bound it queues the
/// read anyway and pauses reading until the queue drains.
final class EchoServerHandler: ConnectionHandler {
    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        if !c.enqueue(bytes) {
            c.enqueue(bytes, force: true)
            c.pauseReading()
        }
    }
    func connectionDrained(_ c: TCPConnection) { c.resumeReading() }
}

/// Keeps `window` messages in flight on one connection.
final class PipelineClient: ConnectionHandler {
    let size: Int
    let inFlightLimit: Int
    let verify: Bool
    let stats: Stats
    /// One message, queued by reference for every send. Loop-local count.
    let message: Slab
    var sent = 0
    var received = 0

    init(options: Options, stats: Stats) {
        size = options.size
        inFlightLimit = options.size * options.window
        verify = options.verify
        self.stats = stats
        message = Slab.allocate(capacity: options.size)
        let p = message.base.assumingMemoryBound(to: UInt8.self)
        for i in 0..<options.size { p[i] = patternByte(i) }
        message.used = options.size
    }

    func connectionConnected(_ c: TCPConnection) {
        stats.connected.wrappingAdd(1, ordering: .relaxed)
        pump(c)
    }

    @inline(__always)
    func pump(_ c: TCPConnection) {
        while sent - received + size <= inFlightLimit {
            c.enqueue(message.written, force: true)
            sent += size
        }
    }

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        if verify {
            let p = bytes.start.assumingMemoryBound(to: UInt8.self)
            var position = received % size
            for i in 0..<bytes.count {
                if p[i] != patternByte(position) {
                    stats.mismatches.wrappingAdd(1, ordering: .relaxed)
                    break
                }
                position += 1
                if position == size { position = 0 }
            }
        }
        received += bytes.count
        stats.receivedBytes.wrappingAdd(bytes.count, ordering: .relaxed)
        pump(c)
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        stats.closed.wrappingAdd(1, ordering: .relaxed)
        if let error, !stats.stopRequested.load(ordering: .relaxed) {
            complain("reactor-echo: client connection closed: \(error)")
        }
        message.release()
    }
}

/// A loop's turn counters (relaxed atomics, readable from any thread).
func loopCounters(_ loop: EventLoop) -> (turns: UInt64, busyNanos: UInt64) {
    (loop.turns.load(ordering: .relaxed), loop.busyNanos.load(ordering: .relaxed))
}

func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return s(u.ru_utime) + s(u.ru_stime)
}

func formatted(_ v: Double, _ decimals: Int = 1) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    let n = withVaList([v]) { vsnprintf(&buf, 64, "%.\(decimals)f", $0) }
    return String(decoding: buf.prefix(Int(max(n, 0))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func padded(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

let options = parseOptions()
let stats = Stats()

// Signals reach the loops only through a signalfd (EventLoopGroup blocks
// them), so Ctrl-C is taken by the server loop and ends the run early.
let server = try EventLoopGroup(loopCount: 1)
let serverLoop = server.loops[0]
try serverLoop.handleSignals { _ in stats.stopRequested.store(true, ordering: .relaxed) }
let port = try server.listen(on: SocketAddress(host: "127.0.0.1", port: 0)) { c in
    c.handler = EchoServerHandler()
}
server.start()
let clients = try EventLoopGroup(loopCount: 1)
let clientLoop = clients.loops[0]
clients.start()

print("reactor-echo: \(options.connections) connection(s), \(options.size)-byte messages, window \(options.window), \(options.seconds) s; server loop and client loop on 127.0.0.1:\(port)\(options.verify ? ", verifying every byte" : "")")

let address = try SocketAddress(host: "127.0.0.1", port: port)
let clientOptions = options
clientLoop.execute {
    for _ in 0..<clientOptions.connections {
        do {
            _ = try TCPConnection.connect(
                to: address, on: clientLoop, handler: PipelineClient(options: clientOptions, stats: stats),
                outboundLimit: clientOptions.size * clientOptions.window + clientOptions.size)
        } catch {
            complain("reactor-echo: connect: \(error)")
            stats.closed.wrappingAdd(1, ordering: .relaxed)
        }
    }
}

let connectDeadline = MonotonicClock.now() + 10_000_000_000
while stats.connected.load(ordering: .relaxed) < options.connections {
    if MonotonicClock.now() > connectDeadline || stats.closed.load(ordering: .relaxed) > 0 {
        complain("reactor-echo: only \(stats.connected.load(ordering: .relaxed)) of \(options.connections) connections opened")
        exit(1)
    }
    usleep(1000)
}

print("   time    messages/s   MB/s (one way)   server loop busy   client loop busy")
let size = Double(options.size)
let start = MonotonicClock.now()
let startBytes = stats.receivedBytes.load(ordering: .relaxed)
let startCPU = cpuSeconds()
let startLoop = loopCounters(serverLoop)
let startClient = loopCounters(clientLoop)
var lastTime = start, lastBytes = startBytes, lastLoop = startLoop, lastClient = startClient
var secondsRun = 0
for second in 1...options.seconds {
    let target = start + UInt64(second) * 1_000_000_000
    while MonotonicClock.now() < target && !stats.stopRequested.load(ordering: .relaxed) {
        let left = Int64(target) - Int64(MonotonicClock.now())
        if left > 0 { usleep(UInt32(min(left / 1000, 50_000))) }
    }
    let now = MonotonicClock.now()
    let bytes = stats.receivedBytes.load(ordering: .relaxed)
    let loop = loopCounters(serverLoop)
    let client = loopCounters(clientLoop)
    let dt = Double(now - lastTime) / 1e9
    let db = Double(bytes - lastBytes)
    let busy = Double(loop.busyNanos - lastLoop.busyNanos) / Double(now - lastTime) * 100
    let clientBusy = Double(client.busyNanos - lastClient.busyNanos) / Double(now - lastTime) * 100
    print("  \(padded(String(second), 3)) s  \(padded(formatted(db / size / dt, 0), 12))   \(padded(formatted(db / 1e6 / dt), 14))   \(padded(formatted(busy), 13)) %   \(padded(formatted(clientBusy), 14)) %")
    fflush(nil)
    lastTime = now; lastBytes = bytes; lastLoop = loop; lastClient = client
    secondsRun = second
    if stats.stopRequested.load(ordering: .relaxed) { break }
}
let end = MonotonicClock.now()
let endBytes = stats.receivedBytes.load(ordering: .relaxed)
let endCPU = cpuSeconds()
let endLoop = loopCounters(serverLoop)
let endClient = loopCounters(clientLoop)
stats.stopRequested.store(true, ordering: .relaxed)

let elapsed = Double(end - start) / 1e9
let bytes = Double(endBytes - startBytes)
let messages = bytes / size
let cpu = endCPU - startCPU
let turns = endLoop.turns - startLoop.turns
print("""
total: \(formatted(messages, 0)) messages echoed in \(formatted(elapsed, 2)) s (\(secondsRun) s reported)
  messages/s:            \(formatted(messages / elapsed, 0))
  MB/s one way:          \(formatted(bytes / 1e6 / elapsed, 1))  (the server loop reads and writes this much each)
  server loop busy:      \(formatted(Double(endLoop.busyNanos - startLoop.busyNanos) / Double(end - start) * 100, 1)) %  (\(turns) turns, \(formatted(messages / Double(max(turns, 1)), 1)) messages per turn)
  client loop busy:      \(formatted(Double(endClient.busyNanos - startClient.busyNanos) / Double(end - start) * 100, 1)) %  (\(endClient.turns - startClient.turns) turns)
  process CPU:           \(formatted(cpu, 2)) s, \(formatted(cpu / max(messages, 1) * 1e6, 3)) CPU-s per million messages
""")
if options.verify {
    let m = stats.mismatches.load(ordering: .relaxed)
    print("  verify:                \(m == 0 ? "every echoed byte matched" : "\(m) reads held wrong bytes")")
}

clients.stop()
clients.join()
server.stop()
server.join()
exit(options.verify && stats.mismatches.load(ordering: .relaxed) != 0 ? 1 : 0)
