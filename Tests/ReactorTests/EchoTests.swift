import Glibc
import Synchronization
@testable import Reactor

/// Streams `total` pattern bytes and checks every echoed byte by position.
/// It keeps at most `window` bytes in flight.
final class StreamingClient: ConnectionHandler, @unchecked Sendable {
    let total: Int
    let window: Int
    let chunk = 64 * 1024
    private(set) var sent = 0
    private(set) var received = 0
    private(set) var mismatchAt: Int? = nil
    let done: Flag
    let tinyBuffers: Bool

    init(total: Int, window: Int, tinyBuffers: Bool, done: Flag) {
        self.total = total
        self.window = window
        self.tinyBuffers = tinyBuffers
        self.done = done
    }

    func connectionConnected(_ c: TCPConnection) {
        pump(c)
    }

    private func pump(_ c: TCPConnection) {
        while sent < total && sent - received < window {
            let n = min(chunk, total - sent)
            let s = Slab.allocate(capacity: n)
            let p = s.base.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { p[i] = patternByte(sent + i) }
            s.used = n
            c.enqueue(s.written, force: true)
            s.release()
            sent += n
        }
    }

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        let p = bytes.start.assumingMemoryBound(to: UInt8.self)
        if mismatchAt == nil {
            for i in 0..<bytes.count where p[i] != patternByte(received + i) {
                mismatchAt = received + i
                break
            }
        }
        received += bytes.count
        if received >= total {
            c.close()
            done.set()
        } else {
            pump(c)
        }
    }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        if received < total { done.set() }
    }
}

/// Opens, echoes one message, then holds the connection until told to close.
final class HoldingClient: ConnectionHandler {
    static let message: [UInt8] = Array("hello from a held connection".utf8)
    var got = 0
    let echoed: Counter
    let failed: Counter
    init(echoed: Counter, failed: Counter) { self.echoed = echoed; self.failed = failed }
    func connectionConnected(_ c: TCPConnection) { c.enqueue(copying: Self.message) }
    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        got += bytes.count
        if got == Self.message.count { echoed.add() }
    }
    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        if got < Self.message.count { failed.add() }
    }
}

extension ReactorSuite {
@Suite struct EchoTests {
    /// Tiny kernel buffers on both sides (4 KiB, doubled by the kernel)
    /// force partial writes and EAGAIN on nearly every `writev`.
    @Test func hundredMegabytesThroughTinySocketBuffersArriveByteForByte() throws {
        let total = 100 * 1024 * 1024
        let done = Flag()
        let client = StreamingClient(total: total, window: 4 << 20, tinyBuffers: true, done: done)
        try withGroup(loops: 2) { server in
            let port = try server.listen(on: SocketAddress(host: "127.0.0.1", port: 0), outboundLimit: 64 * 1024) { c in
                Socket.setBufferSizes(c.fd, send: 4096, receive: 4096)
                c.handler = EchoHandler()
            }
            try withGroup(loops: 1) { clients in
                let loop = clients.loops[0]
                loop.execute {
                    _ = try! TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: loop, handler: client) { fd in
                        Socket.setMaxSegment(fd, 1024)
                        Socket.setBufferSizes(fd, send: 4096, receive: 4096)
                    }
                }
                #expect(done.wait(seconds: 300))
                let r = Flag()
                nonisolated(unsafe) var result: (Int, Int?) = (0, nil)
                loop.execute { result = (client.received, client.mismatchAt); r.set() }
                #expect(r.wait(seconds: 5))
                #expect(result.0 == total)
                #expect(result.1 == nil, "first wrong byte at \(result.1 ?? -1)")
            }
        }
    }

    @Test func fiveThousandConcurrentConnectionsOnTwoLoopsAllEcho() throws {
        let n = 5000
        let echoed = Counter(), failed = Counter(), serverClosed = Counter()
        let accepted = Counter()
        try withGroup(loops: 2) { server in
            let port = try server.listen(on: SocketAddress(host: "127.0.0.1", port: 0)) { c in
                accepted.add()
                c.handler = EchoHandler(closed: serverClosed)
            }
            try withGroup(loops: 2) { clients in
                // Connect in batches of 250 per loop turn so the accept
                // backlog never overflows.
                for batch in 0..<(n / 250) {
                    let loop = clients.loops[batch % 2]
                    loop.execute {
                        for _ in 0..<250 {
                            _ = try! TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: loop,
                                                              handler: HoldingClient(echoed: echoed, failed: failed))
                        }
                    }
                    let deadline = MonotonicClock.now() + 30_000_000_000
                    while echoed.current + failed.current < (batch + 1) * 250 && MonotonicClock.now() < deadline { usleep(1000) }
                }
                #expect(echoed.current == n)
                #expect(failed.current == 0)
                #expect(accepted.current == n)
                #expect(serverClosed.current == 0)   // all still open at once
            }
            // Clients closed with their group: the server sees every close.
            let deadline = MonotonicClock.now() + 30_000_000_000
            while serverClosed.current < n && MonotonicClock.now() < deadline { usleep(1000) }
            #expect(serverClosed.current == n)
        }
    }

    @Test func halfCloseDeliversTheRestThenEOF() throws {
        // The client sends, shuts down its write side, and still receives
        // the full echo before the server closes.
        let done = Flag()
        final class HalfCloser: ConnectionHandler, @unchecked Sendable {
            var got: [UInt8] = []
            let done: Flag
            init(done: Flag) { self.done = done }
            func connectionConnected(_ c: TCPConnection) {
                c.enqueue(copying: Array("half-closed but listening".utf8))
                c.shutdownWrite()
            }
            func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) { got += bytes.bytes }
            func connectionReadEOF(_ c: TCPConnection) { c.close(); done.set() }
        }
        let h = HalfCloser(done: done)
        try withGroup(loops: 1) { server in
            let port = try server.listen(on: SocketAddress(host: "127.0.0.1", port: 0)) { c in c.handler = EchoHandler() }
            try withGroup(loops: 1) { clients in
                clients.loops[0].execute {
                    _ = try! TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: clients.loops[0], handler: h)
                }
                #expect(done.wait(seconds: 10))
            }
        }
        #expect(String(decoding: h.got, as: UTF8.self) == "half-closed but listening")
    }
}
}
