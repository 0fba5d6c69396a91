import Glibc
@testable import Reactor

extension ReactorSuite {
@Suite struct LifecycleTests {
    @Test func stoppingWithOpenConnectionsLeaksNoDescriptorAndNoThread() throws {
        let fdsBefore = openDescriptors()
        let threadsBefore = loopThreadCount()
        let echoed = Counter(), failed = Counter()
        do {
            let server = try EventLoopGroup(loopCount: 2)
            let port = try server.listen(on: SocketAddress(host: "127.0.0.1", port: 0)) { c in c.handler = EchoHandler() }
            server.start()
            let clients = try EventLoopGroup(loopCount: 2)
            clients.start()
            // Threads name themselves as they start: wait for all four.
            let started = MonotonicClock.now()
            while loopThreadCount() < threadsBefore + 4 && MonotonicClock.now() - started < 5_000_000_000 { usleep(1000) }
            #expect(loopThreadCount() == threadsBefore + 4)
            for loop in clients.loops {
                loop.execute {
                    for _ in 0..<50 {
                        _ = try! TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: loop,
                                                      handler: HoldingClient(echoed: echoed, failed: failed))
                    }
                    _ = loop.schedule(afterNanoseconds: 3_600_000_000_000) {}   // a pending timer
                }
            }
            let deadline = MonotonicClock.now() + 10_000_000_000
            while echoed.current < 100 && MonotonicClock.now() < deadline { usleep(1000) }
            #expect(echoed.current == 100)
            #expect(openDescriptors().count >= fdsBefore.count + 200)
            // Stop the server first, with every connection open.
            server.stop(); server.join()
            clients.stop(); clients.join()
        }
        #expect(loopThreadCount() == threadsBefore)
        let fdsAfter = openDescriptors()
        #expect(fdsAfter == fdsBefore, "leaked: \(Set(fdsAfter).subtracting(fdsBefore).sorted())")
    }

    @Test func aPortInUseIsReportedByNumber() throws {
        let first = try EventLoopGroup(loopCount: 1)
        let port = try first.listen(on: SocketAddress(host: "127.0.0.1", port: 0)) { c in c.close() }
        defer { first.stop(); first.start(); first.join() }
        let second = try EventLoopGroup(loopCount: 2)
        defer { second.stop(); second.start(); second.join() }
        var message = ""
        do {
            try second.listen(on: SocketAddress(host: "127.0.0.1", port: port)) { c in c.close() }
        } catch {
            message = "\(error)"
        }
        #expect(message.contains("port \(port) is already in use"))
    }

    @Test func badAddressesAreNamed() {
        #expect(throws: SocketError.self) { try SocketAddress(host: "not-an-ip", port: 80) }
        #expect(throws: SocketError.self) { try SocketAddress(host: "127.0.0.1", port: 70000) }
    }
}
}
