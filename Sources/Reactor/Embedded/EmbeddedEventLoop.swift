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
    /// The in-memory transports whose readiness this loop delivers; shared
    /// by the loops of a group, since a connection may move between them.
    final class Watched {
        var transports: [(transport: MemoryTransport, fd: Int32)] = []
    }
    let watched: Watched

    /// Turns after which `run()` gives up: something keeps itself busy.
    public static let maxTurns = 100_000

    /// Loops of one `EmbeddedLoopGroup` share its clock.
    public convenience init(index: Int = 0) throws(SystemError) {
        try self.init(index: index, clock: VirtualClock(), watched: Watched())
    }

    init(index: Int, clock: VirtualClock, watched: Watched) throws(SystemError) {
        self.clock = clock
        self.watched = watched
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
        watched.transports.append((transport, transport.fd))
    }

    /// Runs turns until one finds nothing to do. Returns whether any did something.
    @discardableResult
    public func run() -> Bool {
        for turn in 0..<Self.maxTurns {
            if loop.runTurn(timeout: 0, extraEvents: deliverReadiness) == 0 { return turn > 0 }
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
        watched.transports.removeAll { $0.transport.isClosed }
        // Each loop delivers only to the descriptors registered with it.
        for (t, fd) in watched.transports where loop.deliver(ready: t.readiness, to: fd) {
            delivered += 1
        }
        return delivered
    }
}

/// Several embedded loops on the calling thread with one virtual clock, for
/// tests of what crosses loops: a job one loop posts to another lands in
/// that loop's next turn, and `run()` goes round the loops until none has
/// anything left to do.
public final class EmbeddedLoopGroup {
    public let clock = VirtualClock()
    public let members: [EmbeddedEventLoop]

    public init(count: Int) throws(SystemError) {
        var members: [EmbeddedEventLoop] = []
        let watched = EmbeddedEventLoop.Watched()
        for i in 0..<count { members.append(try EmbeddedEventLoop(index: i, clock: clock, watched: watched)) }
        self.members = members
    }

    public var loops: [EventLoop] { members.map(\.loop) }

    public func run() {
        for _ in 0..<EmbeddedEventLoop.maxTurns {
            var worked = false
            for m in members where m.run() { worked = true }
            if !worked { return }
        }
        preconditionFailure("EmbeddedLoopGroup: still busy after \(EmbeddedEventLoop.maxTurns) rounds")
    }

    /// Moves the shared clock forward, firing every loop's timers at their
    /// own deadlines, earliest first.
    public func advance(by nanoseconds: UInt64) {
        let target = clock.now &+ nanoseconds
        run()
        while let next = members.compactMap({ $0.loop.nextTimerDeadline }).min(), next <= target {
            clock.now = max(clock.now, next)
            run()
        }
        clock.now = target
        run()
    }
}
