/// A one-shot timer on an event loop. Create with `EventLoop.schedule`;
/// `cancel()` on the loop's thread guarantees the body never runs.
public final class LoopTimer {
    let deadline: UInt64
    let sequence: UInt64
    /// Position in the loop's heap, or -1 when not scheduled.
    var heapIndex = -1
    var body: (() -> Void)?
    unowned let loop: EventLoop

    init(deadline: UInt64, sequence: UInt64, loop: EventLoop, body: @escaping () -> Void) {
        self.deadline = deadline
        self.sequence = sequence
        self.loop = loop
        self.body = body
    }

    /// Loop thread only. Idempotent.
    public func cancel() {
        if heapIndex >= 0 { loop.timers.remove(self) }
        body = nil
    }

    /// Earlier deadline first; equal deadlines in scheduling order.
    @inline(__always)
    func fires(before other: LoopTimer) -> Bool {
        deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence
    }
}

/// A binary min-heap of timers with O(log n) removal (each timer knows its
/// index), so that cancelled timers leave at once instead of piling up.
struct TimerHeap {
    private var items: [LoopTimer] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var first: LoopTimer? { items.first }

    mutating func insert(_ t: LoopTimer) {
        t.heapIndex = items.count
        items.append(t)
        siftUp(items.count - 1)
    }

    mutating func remove(_ t: LoopTimer) {
        let i = t.heapIndex
        guard i >= 0 && i < items.count && items[i] === t else { return }
        let last = items.count - 1
        if i != last {
            items.swapAt(i, last)
            items[i].heapIndex = i
        }
        items.removeLast()
        t.heapIndex = -1
        if i < items.count {
            siftDown(i)
            siftUp(i)
        }
    }

    mutating func popFirst() -> LoopTimer? {
        guard let t = items.first else { return nil }
        remove(t)
        return t
    }

    mutating func removeAll() {
        for t in items { t.heapIndex = -1; t.body = nil }
        items.removeAll()
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].fires(before: items[parent]) else { break }
            items.swapAt(i, parent)
            items[i].heapIndex = i
            items[parent].heapIndex = parent
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l].fires(before: items[m]) { m = l }
            if r < items.count && items[r].fires(before: items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            items[i].heapIndex = i
            items[m].heapIndex = m
            i = m
        }
    }
}
