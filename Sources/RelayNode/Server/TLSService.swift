import Logging
import Reactor
import TLS

/// TLS on the relay's listener: the current server context, swapped by a
/// reload (SIGHUP), and the counters every TLS connection reports to.
/// A connection keeps the context it started with: a reload changes only
/// what new connections get, and drops nothing.
final class TLSService: Sendable {
    let settings: TLSSettings
    let counters = TLSCounters()
    private let current: Locked<TLSContext>

    init(settings: TLSSettings) throws {
        self.settings = settings
        current = Locked(try settings.makeContext())
    }

    var context: TLSContext { current.withLock { $0 } }

    /// The listener's transport for an accepted socket (any loop thread).
    func transport(fd: Int32) throws -> any Transport {
        try TLSTransport(fd: fd, context: context, counters: counters)
    }

    /// Re-reads certificate, key and CA. A file that cannot be used keeps
    /// the old context (and says why).
    func reload(logger: Logger) {
        do {
            let fresh = try settings.makeContext()
            current.withLock { $0 = fresh }
            logger.notice("tls reloaded", metadata: ["cert": "\(settings.certificateFile)", "not_after": "\(fresh.certificateNotAfter)"])
        } catch {
            logger.error("tls reload failed, keeping the previous certificate", metadata: ["error": "\(error)"])
        }
    }
}
