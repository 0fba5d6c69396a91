import Glibc
import CReactor
@testable import Reactor

extension ReactorSuite {
@Suite struct OutboundQueueTests {
    let iov = UnsafeMutablePointer<iovec>.allocate(capacity: Int(CREACTOR_IOV_MAX))

    @Test func refusesOnceTheBacklogBehindTheHeadReachesTheBound() {
        var q = OutboundQueue(limit: 10)
        let big = Slab.copying([UInt8](repeating: 7, count: 50))
        let small = Slab.copying([UInt8](repeating: 1, count: 6))
        defer { big.release(); small.release() }
        // Larger than the bound, into an empty queue: accepted.
        let first = q.enqueue(big.written)
        // Behind the head: 0, then 6 bytes wait (< 10): accepted.
        let second = q.enqueue(small.written)
        let third = q.enqueue(small.written)
        // 12 bytes wait behind the head (≥ 10): refused, nothing queued.
        let fourth = q.enqueue(small.written)
        #expect(first && second && third && !fourth)
        var (count, bytes) = (q.count, q.bytes)
        #expect(count == 3 && bytes == 62)
        let forced = q.enqueue(small.written, force: true)
        #expect(forced)
        (count, bytes) = (q.count, q.bytes)
        #expect(count == 4 && bytes == 68)
        #expect(small.refs == 4)
        q.removeAll()
        #expect(small.refs == 1 && big.refs == 1)
    }

    @Test func partialWritesResumeMidSliceAndReleaseWhatLeft() {
        var q = OutboundQueue(limit: 1 << 20)
        let slab = Slab.copying((0..<100).map { UInt8($0) })
        defer { slab.release() }
        let whole = slab.written
        for i in 0..<10 { _ = q.enqueue(whole.slice(from: i * 10, count: 10)) }
        #expect(q.count == 10)
        var sink: [UInt8] = []
        // A socket that takes 7 bytes per call, then says EAGAIN.
        var calls = 0
        while !q.isEmpty {
            let r = q.flush(iovecs: iov) { v, n in
                calls += 1
                if calls % 2 == 0 { return .wouldBlock }
                var left = 7
                for i in 0..<Int(n) where left > 0 {
                    let take = min(left, v[i].iov_len)
                    sink += UnsafeRawBufferPointer(start: v[i].iov_base, count: take)
                    left -= take
                }
                return .bytes(7 - left)
            }
            let empty = q.isEmpty
            #expect(r == (empty ? .drained : .wouldBlock))
        }
        #expect(sink == (0..<100).map { UInt8($0) })
        #expect(slab.refs == 1)
    }

    @Test func batchesAtMostIOVMaxSlicesPerWrite() {
        var q = OutboundQueue(limit: 1 << 30)
        let slab = Slab.copying([1])
        defer { slab.release() }
        let total = Int(CREACTOR_IOV_MAX) * 2 + 5
        for _ in 0..<total { _ = q.enqueue(slab.written) }
        var batches: [Int32] = []
        let r = q.flush(iovecs: iov) { v, n in
            batches.append(n)
            return .bytes(Int(n))
        }
        #expect(r == .drained)
        #expect(batches == [CREACTOR_IOV_MAX, CREACTOR_IOV_MAX, 5])
    }

    @Test func slicesThatContinueEachOtherGoOutAsOneIovec() {
        var q = OutboundQueue(limit: 1 << 30)
        let run = Slab.copying((0..<255).map { UInt8($0) })
        let other = Slab.copying([9, 9])
        defer { run.release(); other.release() }
        // 2 × IOV_MAX + 5 one-byte frames laid end to end (as a pod's arena
        // builds them), more than one writev could carry one iovec each…
        let frames = Int(CREACTOR_IOV_MAX) * 2 + 5
        let big = Slab.allocate(capacity: frames)
        defer { big.release() }
        big.used = frames
        for i in 0..<frames { _ = q.enqueue(big.written.slice(from: i, count: 1)) }
        // …then a slice elsewhere, then two adjacent ones again.
        _ = q.enqueue(other.written)
        _ = q.enqueue(run.written.slice(from: 10, count: 5))
        _ = q.enqueue(run.written.slice(from: 15, count: 5))
        var iovecsPerWrite: [[Int]] = []
        let r = q.flush(iovecs: iov) { v, n in
            iovecsPerWrite.append((0..<Int(n)).map { v[$0].iov_len })
            return .bytes(iovecsPerWrite.last!.reduce(0, +))
        }
        #expect(r == .drained)
        #expect(iovecsPerWrite == [[frames, 2, 10]])
        #expect(big.refs == 1 && run.refs == 1 && other.refs == 1)
    }

    @Test func coalescingSlicesExtendTheLastEntry() {
        var q = OutboundQueue(limit: 1 << 20)
        let arena = Slab.allocate(capacity: 3 * OutboundQueue.maxRun)
        defer { arena.release() }
        arena.used = arena.capacity
        let w = arena.written
        // Three frames end to end: one entry, one count on the slab.
        for i in 0..<3 { _ = q.enqueue(w.slice(from: i * 10, count: 10), coalesce: true) }
        var (count, bytes) = (q.count, q.bytes)
        #expect(count == 1 && bytes == 30 && arena.refs == 2)
        // Queued without `coalesce`: an entry of its own, and nothing joins it.
        _ = q.enqueue(w.slice(from: 30, count: 10))
        _ = q.enqueue(w.slice(from: 40, count: 10), coalesce: true)
        // A gap: a new entry.
        _ = q.enqueue(w.slice(from: 60, count: 10), coalesce: true)
        (count, bytes) = (q.count, q.bytes)
        #expect(count == 4 && bytes == 60 && arena.refs == 5)
        // A run stops growing at maxRun.
        _ = q.enqueue(w.slice(from: 70, count: OutboundQueue.maxRun - 10), coalesce: true)
        _ = q.enqueue(w.slice(from: 60 + OutboundQueue.maxRun, count: 1), coalesce: true)
        (count, bytes) = (q.count, q.bytes)
        #expect(count == 5 && bytes == 61 + OutboundQueue.maxRun - 10)
        // Dropping sees a run as one entry and drops all of it.
        var seen: [Int] = []
        let removed = q.removeAll(where: { _, slices in seen.append(slices); return slices == 3 })
        #expect(removed == 3 && seen.first == 3)
        var sink: [UInt8] = []
        _ = q.flush(iovecs: iov) { v, n in
            for i in 0..<Int(n) { sink += UnsafeRawBufferPointer(start: v[i].iov_base, count: v[i].iov_len) }
            return .bytes(sink.count)
        }
        #expect(sink.count == 31 + OutboundQueue.maxRun - 10)
        #expect(arena.refs == 1)
    }

    @Test func onlyEntriesWithTheSameTagCoalesce() {
        var q = OutboundQueue(limit: 1 << 20)
        let arena = Slab.allocate(capacity: 100)
        defer { arena.release() }
        arena.used = 100
        let w = arena.written
        _ = q.enqueue(w.slice(from: 0, count: 10), tag: 1, coalesce: true)
        _ = q.enqueue(w.slice(from: 10, count: 10), tag: 1, coalesce: true)
        _ = q.enqueue(w.slice(from: 20, count: 10), tag: 2, coalesce: true)
        _ = q.enqueue(w.slice(from: 30, count: 10), tag: 2, coalesce: true)
        #expect(q.count == 2)
        var byTag: [UInt32: Int] = [:]
        let removed = q.removeAll(where: { tag, slices in byTag[tag] = slices; return tag == 1 })
        #expect(removed == 2 && byTag == [1: 2, 2: 2] && q.bytes == 20)
        q.removeAll()
        #expect(arena.refs == 1)
    }

    @Test func coalescingStillObeysTheBound() {
        var q = OutboundQueue(limit: 25)
        let arena = Slab.allocate(capacity: 100)
        defer { arena.release() }
        arena.used = 100
        var accepted = 0
        for i in 0..<10 where q.enqueue(arena.written.slice(from: i * 10, count: 10), coalesce: true) { accepted += 1 }
        // A run counts as the entry in progress when it is the head: the
        // first refusal comes once 25 bytes wait behind it, so here all ten
        // (100 bytes, one entry) went in…
        #expect(accepted == 10)
        // …and a slice elsewhere is refused only by what waits behind the head.
        let other = Slab.copying([UInt8](repeating: 1, count: 30))
        defer { other.release() }
        let (first, second) = (q.enqueue(other.written), q.enqueue(other.written))
        #expect(first && !second)
        q.removeAll()
        #expect(arena.refs == 1 && other.refs == 1)
    }

    @Test func aDrainedQueueHoldsNoRing() {
        var q = OutboundQueue(limit: 1 << 20)
        let slab = Slab.copying([UInt8](repeating: 1, count: 10))
        defer { slab.release() }
        #expect(q.capacity == 0)
        for _ in 0..<5 { _ = q.enqueue(slab.written) }
        #expect(q.capacity == 8)
        // A socket that takes 25 bytes, then blocks: the ring stays for the rest.
        var r = q.flush(iovecs: iov) { _, _ in .bytes(25) }
        #expect(r == .wouldBlock && q.capacity == 8)
        r = q.flush(iovecs: iov) { v, n in .bytes((0..<Int(n)).reduce(0) { $0 + v[$1].iov_len }) }
        #expect(r == .drained && q.capacity == 0 && q.isEmpty)
        #expect(slab.refs == 1)
    }

    @Test func droppingKeepsThePartlyWrittenHead() {
        var q = OutboundQueue(limit: 1 << 20)
        let slab = Slab.copying([UInt8](repeating: 1, count: 30))
        defer { slab.release() }
        let w = slab.written
        for i in 0..<4 { _ = q.enqueue(w.slice(from: i * 10, count: i == 3 ? 0 : 10), tag: i == 3 ? 7 : 0) }
        // Nothing written yet: every entry may go.
        var removed = q.removeAll(where: { tag, _ in tag == 7 })
        #expect(removed == 1 && q.count == 3)
        // The socket takes 4 bytes of the first entry: it stays, the rest go.
        let r = q.flush(iovecs: iov) { _, _ in .bytes(4) }
        #expect(r == .wouldBlock)
        removed = q.removeAll(where: { _, _ in true })
        let (count, bytes) = (q.count, q.bytes)
        #expect(removed == 2 && count == 1 && bytes == 6)
        // Once that entry is written, the next first entry may be dropped again.
        _ = q.enqueue(w.slice(from: 20, count: 10))
        _ = q.flush(iovecs: iov) { _, _ in .bytes(6) }
        removed = q.removeAll(where: { _, _ in true })
        #expect(removed == 1 && q.isEmpty)
        q.removeAll()
        #expect(slab.refs == 1)
    }

    @Test func writeErrorsAreReported() {
        var q = OutboundQueue(limit: 100)
        let slab = Slab.copying([1, 2, 3])
        defer { slab.release() }
        _ = q.enqueue(slab.written)
        let r = q.flush(iovecs: iov) { _, _ in .error(SystemError("writev", code: EPIPE)) }
        #expect(r == .failed(SystemError("writev", code: EPIPE)))
        q.removeAll()
    }
}
}
