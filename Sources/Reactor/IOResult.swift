/// The outcome of one read or write on a transport.
public enum IOResult: Equatable, Sendable {
    case bytes(Int)
    case wouldBlock
    case eof
    case error(SystemError)
}
