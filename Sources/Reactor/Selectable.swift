/// Something an event loop polls: a socket, a listener, an eventfd.
/// The loop's fd table holds the one strong reference to it.
public protocol Selectable: AnyObject {
    /// Loop thread: the ready epoll bits for this descriptor.
    func handleEvents(_ events: UInt32)
    /// Loop thread: the loop is stopping; release the descriptor.
    func loopWillClose()
}

/// Something with bytes queued during this turn, written once the turn's
/// events are handled (the cork).
public protocol Flushable: AnyObject {
    func flushQueued()
}
