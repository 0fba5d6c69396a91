import Glibc
@testable import Reactor

extension ReactorSuite {
@Suite struct SlabTests {
    final class Watch { weak var slab: Slab? }

    @Test func slicesShareMemoryAndTheLastReleaseFrees() {
        let watch = Watch()
        do {
            let u = Slab.copying([1, 2, 3, 4, 5, 6])
            let slab = u
            watch.slab = u
            let a = slab.written.slice(from: 1, count: 3)
            let b = slab.written.slice(from: 2, count: 4)
            #expect(a.start + 1 == b.start)          // same memory, no copy
            a.retain(); b.retain()
            #expect(slab.refs == 3)
            u.release()                                // creator lets go
            #expect(watch.slab != nil)
            #expect(Array(a.bytes) == [2, 3, 4])
            a.release()
            #expect(watch.slab != nil)
            b.release()
        }
        #expect(watch.slab == nil)
    }

    @Test func readBufferRewindsWhenNothingWasKept() {
        let rb = ReadBuffer(slabSize: 1024, minimumFree: 256)
        let s1 = rb.prepare()
        s1.used = 900
        #expect(rb.prepare() === s1 && s1.used == 0)     // nobody kept anything
        s1.used = 900
        let kept = s1.written.slice(from: 0, count: 10)
        kept.retain()
        let s2 = rb.prepare()
        #expect(s2 !== s1)                                // too little room left
        #expect(Array(kept.bytes).count == 10)
        kept.release()
    }
}
}
