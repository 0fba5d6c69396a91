import Glibc
import CReactor

/// A listening socket on one loop; each accepted connection is adopted on
/// that loop and handed to `onAccept`, which must give it a handler.
public final class TCPListener: Selectable {
    public unowned let loop: EventLoop
    public let fd: Int32
    private let onAccept: (TCPConnection) -> Void
    private let outboundLimit: Int
    /// Wraps each accepted socket (plain TCP unless given, e.g. TLS).
    private let makeTransport: (Int32) throws -> any Transport
    private var backoff: LoopTimer?
    public private(set) var accepted: UInt64 = 0

    /// Accepts per readiness event, so a connection storm cannot monopolise a turn.
    static let acceptBatch = 64

    public init(fd: Int32, on loop: EventLoop, outboundLimit: Int = 1 << 20,
                transport makeTransport: @escaping (Int32) throws -> any Transport = { PlainTransport(fd: $0) },
                onAccept: @escaping (TCPConnection) -> Void) throws(SystemError) {
        self.fd = fd
        self.makeTransport = makeTransport
        self.loop = loop
        self.onAccept = onAccept
        self.outboundLimit = outboundLimit
        try loop.register(fd: fd, events: CREACTOR_EPOLLIN, handler: self)
    }

    public var port: Int { Socket.localPort(fd) }

    public func handleEvents(_ events: UInt32) {
        for _ in 0..<Self.acceptBatch {
            let cfd = creactor_accept4(fd, nil, nil)
            if cfd < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: stop accepting for a moment rather
                    // than spin on a listener that stays readable.
                    pauseAccepting(milliseconds: 100)
                }
                return
            }
            Socket.setNoDelay(cfd)
            guard let transport = try? makeTransport(cfd) else {
                Glibc.close(cfd)
                continue
            }
            guard let c = try? TCPConnection.adopt(transport: transport, on: loop, outboundLimit: outboundLimit) else {
                transport.close()
                continue
            }
            accepted &+= 1
            onAccept(c)
            if c.handler == nil && c.isOpen { c.close() }
        }
    }

    private func pauseAccepting(milliseconds: UInt64) {
        guard backoff == nil else { return }
        loop.modify(fd: fd, events: 0)
        backoff = loop.schedule(afterNanoseconds: milliseconds * 1_000_000) { [unowned self] in
            backoff = nil
            loop.modify(fd: fd, events: CREACTOR_EPOLLIN)
        }
    }

    public func loopWillClose() {
        backoff?.cancel()
        loop.deregister(fd: fd)
        Glibc.close(fd)
    }
}
