import Glibc
import Synchronization
@testable import Reactor

extension ReactorSuite {
@Suite struct TimerAndMailboxTests {
    @Test func timersFireInDeadlineOrderAndCancelledOnesNever() throws {
        let fired = Locked<[Int]>([])
        let done = Flag()
        try withGroup(loops: 1) { group in
            let loop = group.loops[0]
            loop.execute {
                // Scheduled out of order; 3 and 6 are cancelled.
                let delays: [(Int, UInt64)] = [(5, 50), (1, 10), (3, 30), (2, 20), (6, 60), (4, 40), (0, 0)]
                var timers: [Int: LoopTimer] = [:]
                for (id, ms) in delays {
                    timers[id] = loop.schedule(afterNanoseconds: ms * 1_000_000) { fired.withLock { $0.append(id) } }
                }
                timers[3]!.cancel()
                timers[6]!.cancel()
                loop.schedule(afterNanoseconds: 120_000_000) { done.set() }
            }
            #expect(done.wait(seconds: 5))
        }
        #expect(fired.withLock { $0 } == [0, 1, 2, 4, 5])
    }

    @Test func equalDeadlinesFireInSchedulingOrder() throws {
        var heap = TimerHeap()
        let loop = try EventLoop()
        var order: [Int] = []
        for i in 0..<50 {
            heap.insert(LoopTimer(deadline: UInt64(i % 5), sequence: UInt64(i), loop: loop) { order.append(i) })
        }
        while let t = heap.popFirst() { t.body?() }
        let expected = (0..<5).flatMap { d in (0..<50).filter { $0 % 5 == d } }
        #expect(order == expected)
    }

    @Test func mailboxFedFromFourThreadsDeliversEveryItemExactlyOnce() throws {
        let perThread = 50_000
        let seen = Locked<[Int]>([])
        let done = Flag()
        try withGroup(loops: 1) { group in
            let loop = group.loops[0]
            let received = UnsafeMutablePointer<UInt8>.allocate(capacity: 4 * perThread)
            received.initialize(repeating: 0, count: 4 * perThread)
            nonisolated(unsafe) let r = received
            let count = Counter()
            var threads: [pthread_t] = []
            for t in 0..<4 {
                final class Box: @unchecked Sendable { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
                let box = Box {
                    for i in 0..<perThread {
                        let item = t * perThread + i
                        loop.execute {
                            r[item] &+= 1                 // loop thread only
                            if count.add() == 4 * perThread { done.set() }
                        }
                    }
                }
                var th = pthread_t()
                pthread_create(&th, nil, { arg in
                    Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
                    return nil
                }, Unmanaged.passRetained(box).toOpaque())
                threads.append(th)
            }
            for th in threads { pthread_join(th, nil) }
            #expect(done.wait(seconds: 30))
            let s = Flag()
            loop.execute {
                seen.withLock { v in v = (0..<(4 * perThread)).filter { r[$0] != 1 } }
                s.set()
            }
            #expect(s.wait(seconds: 5))
            received.deallocate()
        }
        #expect(seen.withLock { $0 }.isEmpty, "items not delivered exactly once")
    }
}
}
