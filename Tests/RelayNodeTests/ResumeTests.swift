import Framing
@testable import RelayNode

/// Replay, instant attach and resume (docs/protocol.md "Replay"): Position
/// after the catch-up, exact resume by epoch/seq, Gap + Snapshot + tail
/// when the frames are gone or the epoch is another.
@Suite struct ResumeTests {
    static func be(_ bytes: ArraySlice<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }

    /// (epoch, seq) of a Position frame.
    static func position(_ f: [UInt8]) -> (UInt32, UInt64)? {
        guard f.first == RelayFrameType.position.rawValue, f.count == 13 else { return nil }
        return (UInt32(be(f[1..<5])), be(f[5..<13]))
    }

    func relevant(_ p: Peer) -> [[UInt8]] {
        p.takeFrames().filter { $0.first != RelayFrameType.presence.rawValue }
    }

    @Test func aJoiningBrowserGetsSnapshotTailAndPosition() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        runner.send(.output, [1])
        runner.send(.snapshot, Array("S".utf8))
        runner.send(.output, [2])
        runner.send(.control, [3])
        let plain = try h.browser("p")
        #expect(relevant(plain) == [[1, 83], [2, 2], [7, 3]], "Snapshot, then the frames after it")
        let ext = try h.browser("p", ext: true)
        let got = relevant(ext)
        #expect(Array(got.dropLast()) == [[1, 83], [2, 2], [7, 3]])
        #expect(Self.position(got.last ?? [])?.1 == 3)
        #expect(runner.takeTypes().allSatisfy { $0 != RelayFrameType.resync.rawValue }, "a cached Snapshot needs no runner round trip")
    }

    @Test func resumeGetsExactlyTheFramesAfterItsSeq() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let first = try h.browser("p", ext: true)
        guard let (epoch, start) = Self.position(relevant(first).last ?? []) else {
            Issue.record("no Position on join"); return
        }
        #expect(start == 0)
        for i: UInt8 in 1...5 { runner.send(.output, [i]) }
        #expect(relevant(first).count == 5)
        first.drop()
        let back = try h.browser("p", ext: true, resume: (epoch, 3))
        let got = relevant(back)
        #expect(Array(got.dropLast()) == [[2, 4], [2, 5]])
        #expect(Self.position(got.last ?? [])! == (epoch, 5))
    }

    @Test func resumeFromFramesTheRingNoLongerHoldsGetsGapThenSnapshotAndTail() throws {
        let h = try RelayHarness { $0.pod.replayRingBytes = 100 }
        let runner = try h.runner("p")
        let first = try h.browser("p", ext: true)
        let (epoch, _) = Self.position(relevant(first).last!)!
        runner.send(.snapshot, [0x53])
        for i: UInt8 in 1...20 { runner.send(.output, Array(repeating: i, count: 10)) }
        // The ring holds the last ~7 frames (each 11 B payload + 2 B header).
        let back = try h.browser("p", ext: true, resume: (epoch, 2))
        let got = relevant(back)
        #expect(got.first?.first == RelayFrameType.gap.rawValue)
        let gap = got.first ?? []
        let from = Self.be(gap[5..<13]), to = Self.be(gap[13..<21])
        #expect(UInt32(Self.be(gap[1..<5])) == epoch)
        #expect(from == 3, "from the client's next frame")
        #expect(to >= from && to < 20, "up to the first frame still held")
        #expect(got.dropFirst().first == [1, 0x53])
        let tail = got.dropFirst(2).dropLast()
        #expect(tail.last == [2] + Array(repeating: 20, count: 10))
        #expect(tail.count == Int(20 - to), "every frame after the gap, none twice")
        #expect(Self.position(got.last!)! == (epoch, 20))
    }

    @Test(arguments: [true, false])
    func anotherEpochOrAFutureSeqIsAGap(otherEpoch: Bool) throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let first = try h.browser("p", ext: true)
        let (epoch, _) = Self.position(relevant(first).last!)!
        runner.send(.output, [1])
        let resume = otherEpoch ? (epoch &+ 1, UInt64(1)) : (epoch, UInt64(99))
        let back = try h.browser("p", ext: true, resume: resume)
        let got = relevant(back)
        #expect(got.first?.first == RelayFrameType.gap.rawValue)
        #expect(got.contains([2, 1]), "the catch-up follows the Gap")
        #expect(Self.position(got.last!)! == (epoch, 1))
    }

    @Test func plainClientsNeverSeeExtensionFrames() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let plain = try h.browser("p", resume: (1, 1))
        _ = try h.browser("p", ext: true)
        runner.send(.output, [1])
        runner.drop()
        let types = Set(plain.takeTypes())
        #expect(types.allSatisfy { $0 < 0x20 }, "extension types only with ext=1: \(types)")
    }
}
