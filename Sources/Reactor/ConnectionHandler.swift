/// The owner of a connection: the protocol code above the Reactor. All calls
/// come on the connection's loop thread.
public protocol ConnectionHandler: AnyObject {
    /// Bytes just read. They sit in the loop's read slab and are borrowed for
    /// the duration of the call: retain a (sub-)slice to keep any of them.
    func connectionRead(_ connection: TCPConnection, _ bytes: SlabSlice)
    /// The peer half-closed its side (read returned 0). The default closes
    /// once everything queued is written.
    func connectionReadEOF(_ connection: TCPConnection)
    /// The outbound queue drained after an `enqueue` was refused, or after
    /// `notifyWhenDrained()`: the owner may resume whatever it held back.
    func connectionDrained(_ connection: TCPConnection)
    /// The stream is ready for application bytes: a client's connect (and
    /// its transport's handshake, for TLS) completed, or a server
    /// connection's TLS handshake did. Plain accepted connections are ready
    /// from the start and never hear it.
    func connectionConnected(_ connection: TCPConnection)
    /// The connection is closed (nil: closed on purpose, not by an error).
    /// Called exactly once; the handler is released afterwards.
    func connectionClosed(_ connection: TCPConnection, error: SystemError?)
}

extension ConnectionHandler {
    public func connectionReadEOF(_ connection: TCPConnection) { connection.close(afterFlush: true) }
    public func connectionDrained(_ connection: TCPConnection) {}
    public func connectionConnected(_ connection: TCPConnection) {}
    public func connectionClosed(_ connection: TCPConnection, error: SystemError?) {}
}
