import Glibc
import CReactor

/// A multi-producer, single-consumer queue that wakes its consumer's loop
/// through an `eventfd`: one `write` per batch (only the post that finds the
/// queue empty signals), one `read` per drain.
public final class Mailbox<Item: Sendable>: @unchecked Sendable {
    private struct State {
        var items: [Item] = []
        var closed = false
    }
    private let state = Locked(State())
    /// Written by producers, read by the consumer; closed by `close()`.
    public let eventFD: Int32
    /// Consumer-side spare array, swapped with the shared one so that
    /// neither side reallocates in steady state. Consumer thread only.
    private var spare: [Item] = []

    public init() throws(SystemError) {
        let fd = creactor_eventfd()
        if fd < 0 { throw SystemError("eventfd") }
        eventFD = fd
    }

    deinit { close() }

    /// Adds an item from any thread. Returns false once the mailbox is closed
    /// (the item is dropped).
    @discardableResult
    public func post(_ item: Item) -> Bool {
        // The eventfd is signalled under the lock: `close()` takes the same
        // lock before closing it, so a post can never write to a closed
        // descriptor (or to another file that reused its number). Only the
        // post that finds the queue empty signals: one write per batch.
        state.withLock { s in
            if s.closed { return false }
            let wasEmpty = s.items.isEmpty
            s.items.append(item)
            if wasEmpty { _ = creactor_eventfd_signal(eventFD) }
            return true
        }
    }

    /// Consumer: takes everything posted so far and hands it to `body` in order.
    /// Returns how many items were delivered.
    @discardableResult
    public func drain(_ body: (Item) -> Void) -> Int {
        // Read the eventfd before taking the items: a post that lands after
        // the swap signals again, so no wake-up is lost.
        _ = creactor_eventfd_drain(eventFD)
        var batch = spare
        state.withLock { s in swap(&s.items, &batch) }
        let n = batch.count
        for item in batch { body(item) }
        batch.removeAll(keepingCapacity: true)
        spare = batch
        return n
    }

    /// Stops accepting items, drops what is queued and closes the eventfd.
    public func close() {
        // Closed under the lock, so no post is between its check and its signal.
        let dropped: [Item] = state.withLock { s in
            if s.closed { return [] }
            s.closed = true
            _ = Glibc.close(eventFD)
            let items = s.items
            s.items.removeAll()
            return items
        }
        _ = dropped        // released outside the lock: their deinits may post
    }
}
