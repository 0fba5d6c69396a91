import Framing
@testable import Reactor
@testable import RelayNode

/// `ReplayRing` on its own (bounded in bytes, oldest evicted first, counted
/// references), and the ring seen from a browser that joins late.
@Suite struct ReplayRingTests {
    /// A slab of `size` bytes, each `UInt8(truncatingIfNeeded: seq)`, with
    /// one counted reference (the test's).
    static func slab(seq: UInt64, size: Int) -> Slab {
        Slab.copying([UInt8](repeating: UInt8(truncatingIfNeeded: seq), count: size))
    }

    static func seqs(_ ring: borrowing ReplayRing, after: UInt64 = 0) -> [UInt64] {
        var out: [UInt64] = []
        ring.forEach(after: after) { out.append($0.seq) }
        return out
    }

    /// Pushes `slab`'s bytes as frame `seq`; the ring retains its own count.
    static func push(_ ring: inout ReplayRing, seq: UInt64, _ slab: Slab) {
        ring.push(seq: seq, frame: slab.written)
    }

    // MARK: Eviction

    @Test func pushingPastTheLimitEvictsTheOldestFirst() {
        var ring = ReplayRing(limit: 100)
        let slabs = (1...5).map { Self.slab(seq: UInt64($0), size: 30) }
        defer { for s in slabs { s.release() } }
        for (i, s) in slabs.prefix(3).enumerated() { Self.push(&ring, seq: UInt64(i + 1), s) }
        #expect(ring.count == 3 && ring.bytes == 90 && ring.firstSeq == 1)
        Self.push(&ring, seq: 4, slabs[3])               // 120 > 100: frame 1 goes
        #expect(Self.seqs(ring) == [2, 3, 4])
        #expect(ring.bytes == 90 && ring.firstSeq == 2)
        #expect(slabs[0].refs == 1, "the evicted frame's count was released")
        #expect(slabs[1].refs == 2)
        // Eviction goes on until the new frame fits: 70 bytes push out two.
        let big = Self.slab(seq: 5, size: 70)
        defer { big.release() }
        Self.push(&ring, seq: 5, big)
        #expect(Self.seqs(ring) == [4, 5])
        #expect(ring.bytes == 100, "exactly at the limit is kept")
        #expect(slabs[1].refs == 1 && slabs[2].refs == 1 && slabs[3].refs == 2 && big.refs == 2)
    }

    @Test func aFrameOfExactlyTheLimitFillsTheRingAlone() {
        var ring = ReplayRing(limit: 64)
        let small = Self.slab(seq: 1, size: 10), full = Self.slab(seq: 2, size: 64)
        defer { small.release(); full.release() }
        Self.push(&ring, seq: 1, small)
        Self.push(&ring, seq: 2, full)
        #expect(Self.seqs(ring) == [2])
        #expect(ring.bytes == 64)
        #expect(small.refs == 1 && full.refs == 2)
    }

    @Test func aFrameBiggerThanTheLimitEmptiesTheRing() {
        var ring = ReplayRing(limit: 64)
        let small = (1...3).map { Self.slab(seq: UInt64($0), size: 10) }
        let huge = Self.slab(seq: 4, size: 65)
        defer { for s in small + [huge] { s.release() } }
        for (i, s) in small.enumerated() { Self.push(&ring, seq: UInt64(i + 1), s) }
        Self.push(&ring, seq: 4, huge)
        #expect(ring.isEmpty && ring.count == 0 && ring.bytes == 0 && ring.firstSeq == nil)
        #expect(Self.seqs(ring).isEmpty)
        #expect(huge.refs == 1, "not kept")
        #expect(small.allSatisfy { $0.refs == 1 })
        // It works on afterwards.
        let next = Self.slab(seq: 5, size: 10)
        defer { next.release() }
        Self.push(&ring, seq: 5, next)
        #expect(Self.seqs(ring) == [5] && ring.bytes == 10)
    }

    @Test func removeAllEmptiesAndReleases() {
        var ring = ReplayRing(limit: 1000)
        let slabs = (1...10).map { Self.slab(seq: UInt64($0), size: 20) }
        defer { for s in slabs { s.release() } }
        for (i, s) in slabs.enumerated() { Self.push(&ring, seq: UInt64(i + 1), s) }
        #expect(slabs.allSatisfy { $0.refs == 2 })
        ring.removeAll()
        #expect(ring.isEmpty && ring.count == 0 && ring.bytes == 0 && ring.firstSeq == nil)
        #expect(slabs.allSatisfy { $0.refs == 1 })
        Self.push(&ring, seq: 11, slabs[0])
        #expect(Self.seqs(ring) == [11] && ring.bytes == 20)
    }

    @Test func theRingReleasesWhatItHoldsWhenItGoes() {
        let slabs = (1...10).map { Self.slab(seq: UInt64($0), size: 20) }
        defer { for s in slabs { s.release() } }
        do {
            var ring = ReplayRing(limit: 100)
            for (i, s) in slabs.enumerated() { Self.push(&ring, seq: UInt64(i + 1), s) }
            #expect(slabs.prefix(5).allSatisfy { $0.refs == 1 } && slabs.suffix(5).allSatisfy { $0.refs == 2 })
            #expect(ring.count == 5)
        }
        #expect(slabs.allSatisfy { $0.refs == 1 }, "deinit released the five it held")
    }

    @Test func slicesOfOneSlabAreCountedOneEach() {
        // Like the pod's frame arena: many frames in one slab.
        let arena = Self.slab(seq: 0, size: 100)
        defer { arena.release() }
        var ring = ReplayRing(limit: 50)
        for i in 0..<10 { ring.push(seq: UInt64(i + 1), frame: arena.written.slice(from: i * 10, count: 10)) }
        #expect(ring.count == 5)
        #expect(arena.refs == 1 + 5)
        ring.removeAll()
        #expect(arena.refs == 1)
    }

    // MARK: forEach(after:)

    @Test func forEachVisitsExactlyTheSeqsAfterTheGivenOne() {
        var ring = ReplayRing(limit: 10 * 8)
        // Push 1...15 into a ring of 10: it holds 6...15.
        for seq in UInt64(1)...15 {
            let s = Self.slab(seq: seq, size: 8)
            Self.push(&ring, seq: seq, s)
            s.release()
        }
        #expect(ring.firstSeq == 6 && ring.count == 10)
        #expect(Self.seqs(ring, after: 0) == Array(6...15))
        #expect(Self.seqs(ring, after: 3) == Array(6...15), "before the first: everything")
        #expect(Self.seqs(ring, after: 5) == Array(6...15), "just before the first")
        #expect(Self.seqs(ring, after: 6) == Array(7...15), "== first")
        #expect(Self.seqs(ring, after: 10) == Array(11...15), "inside")
        #expect(Self.seqs(ring, after: 14) == [15])
        #expect(Self.seqs(ring, after: 15).isEmpty, "== last")
        #expect(Self.seqs(ring, after: 16).isEmpty, "> last")
        #expect(Self.seqs(ring, after: 1000).isEmpty)
        // The frames visited are the ones pushed under those seqs.
        var ok = true
        ring.forEach(after: 0) { e in
            ok = ok && e.frame.count == 8 && e.frame.bytes.allSatisfy { $0 == UInt8(e.seq) }
        }
        #expect(ok)
        // An empty ring visits nothing.
        ring.removeAll()
        #expect(Self.seqs(ring, after: 0).isEmpty)
    }

    // MARK: A model over many wrap-arounds

    /// What the ring should hold: (seq, size), oldest first.
    struct Model {
        let limit: Int
        var items: [(seq: UInt64, size: Int)] = []
        var bytes: Int { items.reduce(0) { $0 + $1.size } }

        mutating func push(seq: UInt64, size: Int) {
            guard size <= limit else { items.removeAll(); return }
            items.append((seq, size))
            while bytes > limit { items.removeFirst() }
        }
    }

    @Test(arguments: [1, 2, 3])
    func countsStayConsistentWithASimpleModelOverThousandsOfFrames(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let limit = 2000
        var ring = ReplayRing(limit: limit)
        var model = Model(limit: limit)
        // A few slabs kept back to check their counts at the end.
        var kept: [Slab] = []
        for seq in UInt64(1)...6000 {
            let size: Int
            switch Int.random(in: 0..<100, using: &rng) {
            case 0: size = limit + Int.random(in: 1...100, using: &rng)   // empties the ring
            case 1: size = 0
            case 2..<10: size = Int.random(in: 500...limit, using: &rng)
            default: size = Int.random(in: 1...120, using: &rng)
            }
            let s = Self.slab(seq: seq, size: size)
            Self.push(&ring, seq: seq, s)
            model.push(seq: seq, size: size)
            if seq % 500 == 0 { kept.append(s) } else { s.release() }

            #expect(ring.count == model.items.count)
            #expect(ring.bytes == model.bytes)
            #expect(ring.firstSeq == model.items.first?.seq)
            #expect(ring.bytes <= limit)
            if seq % 97 == 0 {
                var visited: [(UInt64, Int)] = []
                var contentOK = true
                ring.forEach(after: 0) { e in
                    visited.append((e.seq, e.frame.count))
                    contentOK = contentOK && e.frame.bytes.allSatisfy { $0 == UInt8(truncatingIfNeeded: e.seq) }
                }
                #expect(visited.map(\.0) == model.items.map(\.seq))
                #expect(visited.map(\.1) == model.items.map(\.size))
                #expect(contentOK)
                if let first = model.items.first?.seq, let last = model.items.last?.seq {
                    let mid = first + (last - first) / 2
                    #expect(Self.seqs(ring, after: mid) == model.items.map(\.seq).filter { $0 > mid })
                    #expect(Self.seqs(ring, after: first &- 1) == model.items.map(\.seq))
                    #expect(Self.seqs(ring, after: last).isEmpty)
                }
            }
            if ring.count != model.items.count { break }      // one failure is enough
        }
        let held = Set(model.items.map(\.seq))
        for (i, s) in kept.enumerated() {
            #expect(s.refs == (held.contains(UInt64(i + 1) * 500) ? 2 : 1))
        }
        ring.removeAll()
        #expect(kept.allSatisfy { $0.refs == 1 })
        for s in kept { s.release() }
    }

    // MARK: End to end

    /// Output frames of 10 payload bytes: 12 bytes each in the ring (2-byte
    /// WebSocket header), so a 40-byte ring holds the last three.
    static func output(_ i: UInt8) -> [UInt8] { [RelayFrameType.output.rawValue] + Array(repeating: i, count: 9) }

    func lateJoin(snapshotAfter: Int?) throws -> (browser: [[UInt8]], runnerAskedForResync: Bool) {
        let h = try RelayHarness { $0.pod.replayRingBytes = 40 }
        let runner = try h.runner("p")
        for i in UInt8(1)...10 {
            let f = Self.output(i)
            runner.send(f[0], Array(f.dropFirst()))
            if snapshotAfter == Int(i) { runner.send(.snapshot, Array("screen".utf8)) }
        }
        _ = runner.take()
        let browser = try h.browser("p")
        let resync = runner.takeTypes() == [RelayFrameType.resync.rawValue]
        return (browser.takeFrames(), resync)
    }

    @Test func aLateBrowserWithoutSnapshotGetsOnlyWhatTheRingStillHolds() throws {
        let (frames, resync) = try lateJoin(snapshotAfter: nil)
        #expect(frames == [Self.output(8), Self.output(9), Self.output(10)])
        #expect(resync, "no Snapshot: the runner is asked for one")
    }

    @Test func aLateBrowserGetsTheSnapshotAndTheFramesAfterIt() throws {
        // Snapshot after 9: the ring also holds 8, which the Snapshot covers.
        let (frames, resync) = try lateJoin(snapshotAfter: 9)
        #expect(frames == [[UInt8](.snapshot, "screen"), Self.output(10)])
        #expect(!resync)
    }

    @Test func aLateBrowserGetsTheSnapshotAndTheWholeTailWhenTheRingStillHoldsIt() throws {
        // Snapshot after 7: 8, 9, 10 follow it and are all still held.
        let (frames, resync) = try lateJoin(snapshotAfter: 7)
        #expect(frames == [[UInt8](.snapshot, "screen"), Self.output(8), Self.output(9), Self.output(10)])
        #expect(!resync)
    }

    @Test func aLateBrowserWithAStaleSnapshotGetsWhatIsLeftAndAFreshOneIsAskedFor() throws {
        // Snapshot after 5: 6 and 7 are gone from the ring.
        let (frames, resync) = try lateJoin(snapshotAfter: 5)
        #expect(frames == [[UInt8](.snapshot, "screen"), Self.output(8), Self.output(9), Self.output(10)])
        #expect(resync, "the ring no longer holds what followed the Snapshot")
    }
}

/// SplitMix64: reproducible randomness for the model test.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
