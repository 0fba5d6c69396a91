import Glibc
import CReactor
import Synchronization

/// One thread running `epoll_wait` over its own descriptors, timers and
/// mailbox (in the manner of Redis's ae.c).
///
/// Level-triggered epoll, chosen because a connection reads at most one
/// buffer per turn (fairness between busy and quiet connections): with
/// level triggering the kernel reminds us of what is left, so no connection
/// needs a "still readable" list; the cost is an `epoll_ctl` to arm or disarm
/// EPOLLOUT, which happens only when a socket buffer fills.
///
/// Threading: everything but `execute`, `stop` and the immutable fields is
/// confined to the loop's thread. Other threads reach the loop only through
/// `execute` (the mailbox).
public final class EventLoop: @unchecked Sendable {
    public typealias Job = @Sendable () -> Void

    public let index: Int
    private let epfd: Int32
    private let mailbox: Mailbox<Job>

    // --- Loop thread only below this line. ---
    private struct Registration {
        var handler: Selectable?
        var generation: UInt32 = 0
        /// The epoll bits asked for (what `EmbeddedEventLoop` may deliver).
        var interest: UInt32 = 0
    }
    /// Indexed by fd. The generation is packed beside the fd in epoll's data
    /// so that an event for a closed-and-reused fd is recognised and dropped.
    @exclusivity(unchecked) private var registrations: [Registration] = []
    private var generation: UInt32 = 0
    var timers = TimerHeap()
    private var timerSequence: UInt64 = 0
    // Loop-thread state touched every turn: no runtime exclusivity checks
    // (a job that defers another appends while `deferred` is not being iterated).
    @exclusivity(unchecked) private var dirty: [Flushable] = []
    @exclusivity(unchecked) private var deferred: [() -> Void] = []
    // The lists being worked through; swapped with the two above so that
    // neither is copied (and reallocated) every turn.
    @exclusivity(unchecked) private var flushing: [Flushable] = []
    @exclusivity(unchecked) private var running: [() -> Void] = []
    private var stopping = false
    /// The loop thread's id (0 before it runs): read by other threads in
    /// `inLoop`, hence atomic.
    private let threadID = Atomic<UInt>(0)
    private let events: UnsafeMutablePointer<creactor_event>
    private static let maxEvents = 256

    /// Scratch space for one `writev` (IOV_MAX entries), shared by the loop's connections.
    public let iovecs: UnsafeMutablePointer<iovec>
    /// The loop's read buffer, shared by its connections.
    public let readBuffer: ReadBuffer
    /// Start time of the turn being run (monotonic ns); cheap "now" for handlers.
    public private(set) var turnStart: UInt64 = 0
    /// Turn statistics for metrics, read from other threads (relaxed).
    public let turns = Atomic<UInt64>(0)
    public let busyNanos = Atomic<UInt64>(0)
    /// Where time comes from: nil for CLOCK_MONOTONIC, or a clock that tests move.
    public let virtualClock: VirtualClock?

    public init(index: Int = 0, clock: VirtualClock? = nil) throws(SystemError) {
        self.index = index
        virtualClock = clock
        epfd = creactor_epoll_create()
        if epfd < 0 { throw SystemError("epoll_create1") }
        do {
            mailbox = try Mailbox()
        } catch {
            Glibc.close(epfd)
            throw error
        }
        events = .allocate(capacity: Self.maxEvents)
        iovecs = .allocate(capacity: Int(CREACTOR_IOV_MAX))
        readBuffer = ReadBuffer()
        try register(fd: mailbox.eventFD, events: CREACTOR_EPOLLIN, handler: MailboxReader(loop: self))
    }

    deinit {
        events.deallocate()
        iovecs.deallocate()
    }

    /// The loop's time (monotonic ns, or the virtual clock's).
    @inline(__always)
    public func now() -> UInt64 {
        if let virtualClock { return virtualClock.now }
        return MonotonicClock.now()
    }

    /// True on the loop's own thread.
    public var inLoop: Bool {
        threadID.load(ordering: .relaxed) == UInt(pthread_self())
    }

    // MARK: Descriptors

    public func register(fd: Int32, events: UInt32, handler: Selectable) throws(SystemError) {
        let i = Int(fd)
        if i >= registrations.count {
            registrations.append(contentsOf: repeatElement(Registration(), count: max(i + 1, registrations.count * 2) - registrations.count))
        }
        generation &+= 1
        registrations[i] = Registration(handler: handler, generation: generation, interest: events)
        if creactor_epoll_add(epfd, fd, events, Self.pack(fd, generation)) != 0 {
            let e = SystemError("epoll_ctl(ADD)")
            registrations[i] = Registration()
            throw e
        }
    }

    public func modify(fd: Int32, events: UInt32) {
        registrations[Int(fd)].interest = events
        let r = registrations[Int(fd)]
        _ = creactor_epoll_mod(epfd, fd, events, Self.pack(fd, r.generation))
    }

    /// Hands `ready` to `fd`'s handler, as far as it asked for them: how
    /// `EmbeddedEventLoop` delivers the readiness of in-memory transports.
    /// Returns whether anything was delivered.
    func deliver(ready: UInt32, to fd: Int32) -> Bool {
        guard fd >= 0, Int(fd) < registrations.count, let handler = registrations[Int(fd)].handler else { return false }
        // Like epoll: errors and hang-ups are reported whatever was asked for.
        let events = ready & (registrations[Int(fd)].interest | CREACTOR_EPOLLERR | CREACTOR_EPOLLHUP)
        guard events != 0 else { return false }
        handler.handleEvents(events)
        return true
    }

    /// Forgets `fd`; call before closing it. Returns the handler the table
    /// owned, so the caller can keep it alive until it is done with it.
    @discardableResult
    public func deregister(fd: Int32) -> Selectable? {
        guard Int(fd) < registrations.count, let h = registrations[Int(fd)].handler else { return nil }
        _ = creactor_epoll_del(epfd, fd)
        registrations[Int(fd)] = Registration()
        return h
    }

    @inline(__always)
    private static func pack(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    // MARK: Work from this and other threads

    /// Runs `job` on the loop: later in this turn when called on the loop,
    /// else through the mailbox. Returns false if the loop has stopped.
    @discardableResult
    public func execute(_ job: @escaping Job) -> Bool {
        if inLoop {
            deferred.append(job)
            return true
        }
        return mailbox.post(job)
    }

    /// Loop thread: runs `body` after this turn's events.
    public func runLater(_ body: @escaping () -> Void) {
        deferred.append(body)
    }

    /// Loop thread: `body` runs after `nanoseconds` unless the timer is cancelled.
    @discardableResult
    public func schedule(afterNanoseconds nanoseconds: UInt64, _ body: @escaping () -> Void) -> LoopTimer {
        timerSequence &+= 1
        let t = LoopTimer(deadline: now() &+ nanoseconds, sequence: timerSequence, loop: self, body: body)
        timers.insert(t)
        return t
    }

    /// Loop thread: write `target`'s queue at the end of this turn (once per turn).
    @inline(__always)
    public func scheduleFlush(_ target: Flushable) {
        dirty.append(target)
    }

    /// Any thread: ask the loop to finish its turn and close everything it owns.
    public func stop() {
        _ = execute { [unowned self] in self.stopping = true }
    }

    // MARK: The loop

    /// Runs turns until `stop()`, then closes every descriptor the loop owns.
    public func run() {
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
        while !stopping {
            _ = runTurn(timeout: pollTimeout())
        }
        closeEverything()
    }

    /// One turn: wait for events (up to `timeout` ns; -1 forever), handle
    /// them, then expired timers, deferred jobs, and the flush of everything
    /// written during the turn. Returns how many events, timers, jobs and
    /// flushes it handled (`EmbeddedEventLoop` runs turns until one does none).
    func runTurn(timeout: Int64, extraEvents: () -> Int = { 0 }) -> Int {
        let n = Int(max(creactor_epoll_wait(epfd, events, Int32(Self.maxEvents), timeout), 0))
        let started = MonotonicClock.now()
        turnStart = virtualClock?.now ?? started
        for i in 0..<n {
            let ev = events[i]
            let fd = Int(UInt32(truncatingIfNeeded: ev.data))
            let gen = UInt32(truncatingIfNeeded: ev.data >> 32)
            guard fd < registrations.count, registrations[fd].generation == gen,
                  let handler = registrations[fd].handler else { continue }
            handler.handleEvents(ev.events)
        }
        var work = n + extraEvents()
        work += runExpiredTimers()
        work += runDeferred()
        work += flushDirty()
        turns.add(1, ordering: .relaxed)
        busyNanos.add(MonotonicClock.now() &- started, ordering: .relaxed)
        return work
    }

    /// Embedded use: the calling thread becomes the loop's thread.
    func adoptCallingThread() {
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
    }

    /// Deadline of the earliest timer, if any.
    var nextTimerDeadline: UInt64? { timers.first?.deadline }

    /// Nanoseconds epoll may sleep: 0 with work pending, until the next
    /// timer, or forever (-1).
    private func pollTimeout() -> Int64 {
        if !deferred.isEmpty || !dirty.isEmpty { return 0 }
        guard let next = timers.first else { return -1 }
        let now = now()
        if next.deadline <= now { return 0 }
        return Int64(min(next.deadline - now, UInt64(Int64.max)))
    }

    private func runExpiredTimers() -> Int {
        guard !timers.isEmpty else { return 0 }
        let now = now()
        var fired = 0
        while let t = timers.first, t.deadline <= now {
            _ = timers.popFirst()
            let body = t.body
            t.body = nil
            body?()
            fired += 1
        }
        return fired
    }

    private func runDeferred() -> Int {
        // Jobs deferred by these jobs run in the next pass of this loop, so a
        // job that keeps deferring cannot starve the poll.
        var rounds = 0, ran = 0
        while !deferred.isEmpty && rounds < 4 {
            swap(&deferred, &running)
            for job in running { job() }
            ran += running.count
            running.removeAll(keepingCapacity: true)
            rounds += 1
        }
        return ran
    }

    private func flushDirty() -> Int {
        // A flush can make a handler queue more (e.g. after a drain): those
        // targets land in `dirty` again and are flushed in the next pass.
        var rounds = 0, flushed = 0
        while !dirty.isEmpty && rounds < 2 {
            swap(&dirty, &flushing)
            for t in flushing { t.flushQueued() }
            flushed += flushing.count
            flushing.removeAll(keepingCapacity: true)
            rounds += 1
        }
        return flushed
    }

    /// Loop thread: SIGINT, SIGTERM and SIGHUP arrive here (signalfd) instead
    /// of interrupting a thread. `EventLoopGroup` blocks them in every thread.
    public func handleSignals(_ body: @escaping (Int32) -> Void) throws(SystemError) {
        let fd = creactor_signalfd()
        if fd < 0 { throw SystemError("signalfd") }
        do {
            try register(fd: fd, events: CREACTOR_EPOLLIN, handler: SignalReader(fd: fd, loop: self, body: body))
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    fileprivate func drainMailbox() {
        mailbox.drain { job in job() }
    }

    func closeEverything() {
        mailbox.close()
        for i in registrations.indices {
            guard let h = registrations[i].handler else { continue }
            if i == Int(mailbox.eventFD) { registrations[i] = Registration(); continue }
            h.loopWillClose()
            if registrations[i].handler != nil {
                _ = creactor_epoll_del(epfd, Int32(i))
                registrations[i] = Registration()
            }
        }
        timers.removeAll()
        deferred.removeAll()
        dirty.removeAll()
        Glibc.close(epfd)
    }
}

/// The mailbox's eventfd as a loop descriptor.
private final class MailboxReader: Selectable {
    unowned let loop: EventLoop
    init(loop: EventLoop) { self.loop = loop }
    func handleEvents(_ events: UInt32) { loop.drainMailbox() }
    func loopWillClose() {}
}

/// A signalfd as a loop descriptor.
private final class SignalReader: Selectable {
    let fd: Int32
    unowned let loop: EventLoop
    let body: (Int32) -> Void
    init(fd: Int32, loop: EventLoop, body: @escaping (Int32) -> Void) {
        self.fd = fd
        self.loop = loop
        self.body = body
    }
    func handleEvents(_ events: UInt32) {
        while true {
            let signo = creactor_signalfd_read(fd)
            if signo <= 0 { return }
            body(signo)
        }
    }
    func loopWillClose() {
        loop.deregister(fd: fd)
        Glibc.close(fd)
    }
}
