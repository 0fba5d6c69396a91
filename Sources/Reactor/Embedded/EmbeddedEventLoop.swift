/// An event loop for tests, in the spirit of SwiftNIO's `EmbeddedChannel`:
/// no thread and no waiting. Time is a `VirtualClock` that moves only in
/// `advance(by:)`; connections run over `MemoryTransport`s whose readiness
/// the loop delivers itself; `run()` works through everything that is
/// ready (events, expired timers, deferred jobs, flushes) until nothing is.
///
/// The thread that creates it becomes the loop's thread: use it from that
/// thread only.
public final class EmbeddedEventLoop {
    public let loop: EventLoop
    public let clock: VirtualClock
    private var transports: [(transport: MemoryTransport, fd: Int32)] = []

    /// Turns after which `run()` gives up: something keeps itself busy.
    public static let maxTurns = 100_000

    public init(index: Int = 0) throws(SystemError) {
        clock = VirtualClock()
        loop = try EventLoop(index: index, clock: clock)
        loop.adoptCallingThread()
    }

    deinit { loop.closeEverything() }

    /// A connection on this loop over a new in-memory transport.
    public func connection(sendBufferSize: Int? = nil, outboundLimit: Int = 1 << 20) throws(SystemError) -> (TCPConnection, MemoryTransport) {
        let t = MemoryTransport(sendBufferSize: sendBufferSize)
        let c = try TCPConnection.adopt(transport: t, on: loop, outboundLimit: outboundLimit)
        watch(t)
        return (c, t)
    }

    /// Delivers `transport`'s readiness to whatever connection uses its fd.
    public func watch(_ transport: MemoryTransport) {
        transports.append((transport, transport.fd))
    }

    /// Runs turns until one finds nothing to do.
    public func run() {
        for _ in 0..<Self.maxTurns {
            if loop.runTurn(timeout: 0, extraEvents: deliverReadiness) == 0 { return }
        }
        preconditionFailure("EmbeddedEventLoop: still busy after \(Self.maxTurns) turns")
    }

    /// Moves the clock forward by `nanoseconds`, firing every timer due on
    /// the way at its own deadline, in order, and running what they cause.
    public func advance(by nanoseconds: UInt64) {
        let target = clock.now &+ nanoseconds
        run()
        while let next = loop.nextTimerDeadline, next <= target {
            clock.now = max(clock.now, next)
            run()
        }
        clock.now = target
        run()
    }

    public func advance(seconds: Double) {
        advance(by: UInt64(seconds * 1e9))
    }

    private func deliverReadiness() -> Int {
        var delivered = 0
        transports.removeAll { $0.transport.isClosed }
        for (t, fd) in transports where loop.deliver(ready: t.readiness, to: fd) {
            delivered += 1
        }
        return delivered
    }
}
