import Glibc

/// A value behind a pthread mutex, for the few things several threads
/// share (a mailbox's queue, a close-code tally).
///
/// Why not `Synchronization.Mutex`: on Linux it waits with raw futex calls
/// inside the standard library, which ThreadSanitizer does not see, so every
/// use is reported as a race and `scripts/tsan.sh` could tell nothing. A
/// pthread mutex is what TSan understands, and uncontended it costs the same
/// (an atomic exchange in user space).
public final class Locked<Value>: @unchecked Sendable {
    // Ownership: allocated here, freed in deinit; the mutex must not move.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    @inline(__always)
    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
