import Reactor

/// A pod's recent replayable frames (Output, Control, AcpEvent), each with
/// its sequence number, bounded in bytes: pushing past the bound evicts the
/// oldest. Entries hold one counted reference to their frame.
struct ReplayRing: ~Copyable {
    struct Entry {
        let seq: UInt64
        let frame: SlabSlice
    }
    let limit: Int
    private var entries: [Entry] = []
    private var head = 0
    private(set) var bytes = 0

    init(limit: Int) { self.limit = limit }

    deinit {
        for i in head..<entries.count { entries[i].frame.release() }
    }

    var isEmpty: Bool { head == entries.count }
    var count: Int { entries.count - head }
    /// Oldest sequence number still held (nil when empty).
    var firstSeq: UInt64? { isEmpty ? nil : entries[head].seq }

    mutating func push(seq: UInt64, frame: SlabSlice) {
        guard frame.count <= limit else {
            removeAll()             // a frame bigger than the ring empties it
            return
        }
        frame.retain()
        entries.append(Entry(seq: seq, frame: frame))
        bytes += frame.count
        while bytes > limit {
            let e = entries[head]
            e.frame.release()
            bytes -= e.frame.count
            head += 1
        }
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    mutating func removeAll() {
        for i in head..<entries.count { entries[i].frame.release() }
        entries.removeAll()
        head = 0
        bytes = 0
    }

    /// Visits entries with `seq > after`, oldest first.
    func forEach(after: UInt64, _ body: (Entry) -> Void) {
        guard !isEmpty else { return }
        // Sequence numbers are consecutive within the ring: index directly.
        let first = entries[head].seq
        let skip = after >= first ? Int(min(after - first + 1, UInt64(count))) : 0
        var i = head + skip
        while i < entries.count {
            body(entries[i])
            i += 1
        }
    }
}
