import Glibc
import CReactor

/// N event loops, one thread each (default: one per core), and a listener
/// per loop on the same port (SO_REUSEPORT) so the kernel spreads connections.
public final class EventLoopGroup: @unchecked Sendable {
    public let loops: [EventLoop]
    /// Set by `start`, read by `join`, on the owner's thread.
    private var threads: [pthread_t] = []

    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Blocks SIGINT/SIGTERM/SIGHUP in the calling thread first, so that the
    /// loop threads inherit the mask and signals arrive only through a
    /// signalfd (see `EventLoop.handleSignals`).
    public init(loopCount: Int = EventLoopGroup.coreCount) throws(SystemError) {
        precondition(loopCount >= 1, "an EventLoopGroup needs at least one loop")
        _ = creactor_block_signals()
        var loops: [EventLoop] = []
        for i in 0..<loopCount { loops.append(try EventLoop(index: i)) }
        self.loops = loops
    }

    /// Listens on `address` with one socket per loop; fails with "port N is
    /// already in use" before anything is bound when the port is taken.
    /// Call before `start()`, from the owner's thread. Returns the bound port
    /// (useful with port 0: then the first loop's port is reused by the rest).
    @discardableResult
    public func listen(
        on address: SocketAddress, outboundLimit: Int = 1 << 20,
        transport makeTransport: @escaping @Sendable (Int32) throws -> any Transport = { PlainTransport(fd: $0) },
        onAccept: @escaping @Sendable (TCPConnection) -> Void
    ) throws -> Int {
        var address = address
        if address.port != 0 { try Socket.checkPortFree(address) }
        var fds: [Int32] = []
        do {
            for _ in loops {
                let fd = try Socket.listen(address, reusePort: true)
                fds.append(fd)
                if address.port == 0 { address = try SocketAddress(host: address.host, port: Socket.localPort(fd)) }
            }
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
        // From here each listener belongs to its loop, which closes it on stop.
        for (loop, fd) in zip(loops, fds) {
            do {
                _ = try TCPListener(fd: fd, on: loop, outboundLimit: outboundLimit, transport: makeTransport, onAccept: onAccept)
            } catch {
                close(fd)
                throw error
            }
        }
        return address.port
    }

    /// Starts one thread per loop.
    public func start() {
        precondition(threads.isEmpty, "EventLoopGroup started twice")
        for loop in loops {
            let box = Unmanaged.passRetained(loop).toOpaque()
            var t = pthread_t()
            let rc = pthread_create(&t, nil, { arg in
                let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
                creactor_set_thread_name("loop-\(loop.index)")
                loop.run()
                return nil
            }, box)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            threads.append(t)
        }
    }

    /// Asks every loop to stop; each closes what it owns.
    public func stop() {
        for loop in loops { loop.stop() }
    }

    /// Waits for every loop thread to end (never call from a loop thread).
    public func join() {
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }
}
