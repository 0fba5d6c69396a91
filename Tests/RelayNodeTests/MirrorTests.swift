import Framing
@testable import Reactor
@testable import RelayNode

/// Browsers on a loop that is not their pod's home (`--browser-placement
/// accept`): they join that loop's mirror of the pod, which the home feeds
/// through a link, one batch per turn. Everything a browser on the home
/// loop gets, they get: frames, notices, limits, replay, resume, lag and
/// backpressure, on two embedded loops and virtual time.
@Suite struct MirrorTests {
    func harness(_ configure: (inout RelaySettings) -> Void = { _ in }) throws -> RelayHarness {
        try RelayHarness(loops: 2) {
            $0.browserPlacement = "accept"
            $0.pingInterval = 3600_000_000_000
            configure(&$0)
        }
    }

    /// A pod key homed on loop 0, so browsers accepted by loop 1 are remote.
    func pod(_ h: RelayHarness, _ name: String = "m") -> String {
        (0..<100).map { "\(name)-\($0)" }.first { h.home(of: $0) == 0 }!
    }

    func relevant(_ p: Peer) -> [[UInt8]] { p.takeFrames().filter { $0.first != RelayFrameType.presence.rawValue } }

    @Test func framesReachBrowsersOnBothLoopsAndInputReachesTheRunner() throws {
        let h = try harness()
        let key = pod(h)
        let runner = try h.runner(key, on: 1)
        let local = try h.browser(key, on: 0)
        let remote = try h.browser(key, on: 1)
        #expect(h.server.hubs[1].mirrorCount == 1, "the browser accepted by loop 1 stayed there, in a mirror")
        #expect(h.server.hubs[0].mirrorCount == 0)
        for i: UInt8 in 1...20 { runner.send(.output, [i]) }
        let want = (1...20).map { [RelayFrameType.output.rawValue, UInt8($0)] }
        #expect(relevant(local) == want)
        #expect(relevant(remote) == want)
        remote.send(.input, Array("ls".utf8))
        local.send(.input, Array("pwd".utf8))
        #expect(runner.takeFrames().filter { $0.first == RelayFrameType.input.rawValue }
                == [[UInt8](.input, "ls"), [UInt8](.input, "pwd")])
        runner.send(0x7E, [1])
        #expect(relevant(remote) == [[0x7E, 1]])
    }

    /// Found by the gRPC tests: a frame larger than the link's bound was
    /// refused on an empty link, and with nothing in flight no batch ever
    /// came to start the catch-up, so the mirror's browsers got nothing more.
    @Test func aFrameLargerThanTheLinkBoundReachesTheMirror() throws {
        let h = try harness { $0.pod.replayRingBytes = 64 << 10 }
        let key = pod(h)
        let runner = try h.runner(key, on: 0)
        let remote = try h.browser(key, on: 1)
        _ = relevant(remote)
        let big = [RelayFrameType.output.rawValue] + [UInt8](repeating: 0x61, count: 100_000)
        runner.send(big[0], Array(big.dropFirst()))
        runner.send(.output, [1])
        let got = relevant(remote)
        #expect(got.count == 2 && got.first?.count == big.count && got.last == [RelayFrameType.output.rawValue, 1],
                "got \(got.map(\.count))")
        #expect(h.counters.lags.load(ordering: .relaxed) == 0)
    }

    /// A link that lags recovers without another frame from the runner: a
    /// batch always follows the lag (the frames ahead, and the lag's own
    /// item), and its arrival starts the catch-up.
    @Test func aLaggedLinkRecoversWithoutAnotherFrame() throws {
        let h = try harness { $0.pod.replayRingBytes = 64 << 10 }
        let key = pod(h)
        let runner = try h.runner(key, on: 0)
        let remote = try h.browser(key, ext: true, on: 1)
        _ = relevant(remote)
        // Two 40 KiB frames in one read: the second passes the bound behind the first.
        let frames = (1...2).map { [RelayFrameType.output.rawValue, UInt8($0)] + [UInt8](repeating: 0x62, count: 40 << 10) }
        runner.sendAtOnce(frames)
        h.run()
        let got = relevant(remote)
        #expect(h.server.hubs[0].counters.lags.load(ordering: .relaxed) >= 1 || h.server.hubs[1].counters.lags.load(ordering: .relaxed) >= 1,
                "the link lagged")
        #expect(got.contains { $0.first == RelayFrameType.output.rawValue && $0.count > 2 && $0[1] == 2 },
                "the second frame arrived through the catch-up without another frame from the runner: \(got.map { ($0.first ?? 0, $0.count) })")
    }

    @Test func theBrowserLimitCountsBothLoops() throws {
        let h = try harness { $0.pod.maxBrowsers = 2 }
        let key = pod(h)
        _ = try h.runner(key)
        let a = try h.browser(key, on: 0)
        let b = try h.browser(key, on: 1)
        let c = try h.browser(key, on: 1)
        let d = try h.browser(key, on: 0)
        #expect(a.closeCode == nil && b.closeCode == nil)
        #expect(c.closeCode == .some(1008), "remote one too many")
        #expect(d.closeCode == .some(1008), "local one too many")
        b.close()
        let e = try h.browser(key, on: 0)
        #expect(e.closeCode == nil, "the remote browser's place is free again")
    }

    @Test func aMirrorWhoseOnlyBrowserIsRefusedGoesAway() throws {
        let h = try harness { $0.pod.maxBrowsers = 1 }
        let key = pod(h)
        _ = try h.runner(key)
        _ = try h.browser(key, on: 0)
        let refused = try h.browser(key, on: 1)
        #expect(refused.closeCode == .some(1008))
        #expect(h.server.hubs[1].mirrorCount == 0)
        refused.close()
        #expect(h.server.hubs[1].mirrorCount == 0)
    }

    @Test func presenceAndStatsCountRemoteBrowsers() throws {
        let h = try harness()
        let key = pod(h)
        let runner = try h.runner(key, ext: true)
        _ = try h.browser(key, on: 1)
        _ = try h.browser(key, scope: "read", on: 1)
        let presence = runner.takeFrames().filter { $0.first == RelayFrameType.presence.rawValue }.last ?? []
        #expect(String(decoding: presence.dropFirst(), as: UTF8.self) == #"{"browsers":2,"writers":1}"#)
        #expect(AdminReport.stats(h.server.hubs).contains("\"total_subscribers\":2"))
    }

    @Test func runnerAwayAndBackReachRemoteBrowsersAndTheGraceEndsThem() throws {
        let h = try harness { $0.pod.runnerReconnectTimeout = 10_000_000_000 }
        let key = pod(h)
        let runner = try h.runner(key)
        let remote = try h.browser(key, on: 1)
        _ = remote.take()
        runner.drop()
        #expect(remote.takeTypes() == [RelayFrameType.runnerDisconnected.rawValue])
        let late = try h.browser(key, on: 1)
        #expect(relevant(late).contains([RelayFrameType.runnerDisconnected.rawValue]), "a browser joining while the runner is away")
        let back = try h.runner(key)
        #expect(remote.takeTypes().contains(RelayFrameType.runnerReconnected.rawValue))
        back.drop()
        h.advance(seconds: 9)
        #expect(remote.closeCode == nil)
        h.advance(seconds: 2)
        #expect(remote.closeCode == .some(1001) && late.closeCode == .some(1001))
    }

    @Test func aRemoteBrowserWithoutARunnerTimesOutAsPending() throws {
        let h = try harness { $0.pod.pendingTimeout = 10_000_000_000 }
        let key = pod(h)
        let remote = try h.browser(key, on: 1)
        h.advance(seconds: 9)
        #expect(remote.closeCode == nil)
        h.advance(seconds: 2)
        #expect(remote.closeCode == .some(1001))
    }

    @Test func aMirrorAttachesAndResumesLocallyWithTheHomesSequenceNumbers() throws {
        let h = try harness()
        let key = pod(h)
        let runner = try h.runner(key)
        runner.send(.output, [1])
        runner.send(.snapshot, [0x53])
        runner.send(.output, [2])
        let local = try h.browser(key, ext: true, on: 0)
        let remote = try h.browser(key, ext: true, on: 1)
        let l = relevant(local), r = relevant(remote)
        #expect(l == r, "same catch-up on both loops")
        #expect(r.first == [1, 0x53] && r.dropFirst().first == [2, 2])
        guard let (epoch, seq) = ResumeTests.position(r.last ?? []) else { Issue.record("no Position"); return }
        #expect(seq == 2)
        for i: UInt8 in 3...5 { runner.send(.output, [i]) }
        remote.drop()
        // A second browser on loop 1 (a new mirror) resumes after seq 3.
        let back = try h.browser(key, ext: true, resume: (epoch, 3), on: 1)
        let got = relevant(back)
        #expect(Array(got.dropLast()) == [[2, 4], [2, 5]])
        #expect(ResumeTests.position(got.last ?? [])! == (epoch, 5))
    }

    @Test func aSlowRemoteBrowserLagsAndCatchesUpFromTheMirror() throws {
        let h = try harness { $0.outboundQueueBytes = 16 << 10 }
        let key = pod(h)
        let runner = try h.runner(key)
        runner.send(.snapshot, [0x53])
        let fast = try h.browser(key, on: 1)
        let slow = try h.browser(key, ext: true, sendBufferSize: 4096, on: 1)
        _ = fast.take(); _ = slow.take()
        slow.reads = false
        var sent: [[UInt8]] = []
        // More than a run (64 KiB) can hold, so the queue's bound is passed.
        for i in 0..<200 {
            let f = [RelayFrameType.output.rawValue] + Array(repeating: UInt8(i & 0xFF), count: 1000)
            runner.send(f[0], Array(f.dropFirst()))
            sent.append(f)
        }
        #expect(relevant(fast) == sent)
        slow.reads = true
        slow.drain()
        let got = relevant(slow)
        guard let i = got.firstIndex(where: { $0.first == RelayFrameType.lagged.rawValue }) else {
            Issue.record("no Lagged"); return
        }
        #expect(got[i + 1] == [1, 0x53])
        #expect(Array(got[(i + 2)...].dropLast()) == sent, "the mirror's ring had every frame")
        #expect(h.server.hubs[1].counters.lags.load(ordering: .relaxed) == 1)
    }

    @Test func aFullRunnerHoldsBackRemoteBrowsersToo() throws {
        let h = try harness { $0.outboundQueueBytes = 16 << 10 }
        let key = pod(h)
        let runner = try h.upgrade("/runner/relay?token=\(RelayHarness.token(pod: key, runner: true))", sendBufferSize: 4096)
        let remote = try h.browser(key, on: 1)
        _ = runner.take()
        runner.reads = false
        var sent: [[UInt8]] = []
        for i in 0..<60 {
            let f = [RelayFrameType.input.rawValue] + Array(repeating: UInt8(i), count: 1000)
            remote.send(f[0], Array(f.dropFirst()))
            sent.append(f)
        }
        #expect(remote.transport.pendingInbound > 0, "the remote browser's input waits unread")
        runner.reads = true
        runner.drain()
        remote.drain()
        runner.drain()
        #expect(runner.takeFrames().filter { $0.first == RelayFrameType.input.rawValue } == sent)
    }

    @Test func aLinkThatFallsBehindMendsItselfWithAFreshState() throws {
        let h = try harness { $0.pod.replayRingBytes = 16 << 10 }
        let key = pod(h)
        let runner = try h.runner(key)
        runner.send(.snapshot, [0x53])
        let remote = try h.browser(key, ext: true, on: 1)
        _ = remote.take()
        // 200 KiB in one go: the home reads it in several turns before loop 1
        // runs, so the link passes its 64 KiB bound and skips frames.
        let sent = runner.sendAtOnce((0..<200).map { i in
            [RelayFrameType.output.rawValue] + Array(repeating: UInt8(i & 0xFF), count: 1000)
        })
        remote.drain()
        let got = relevant(remote)
        #expect(h.counters.lags.load(ordering: .relaxed) >= 1, "the link lagged")
        guard let i = got.firstIndex(where: { $0.first == RelayFrameType.lagged.rawValue }) else {
            Issue.record("no Lagged: \(got.map { $0.first ?? 0 })"); return
        }
        #expect(Array(got[..<i]) == Array(sent.prefix(i)), "before the hole, in order")
        #expect(got[i + 1] == [1, 0x53])
        let tail = Array(got[(i + 2)...].dropLast())
        #expect(!tail.isEmpty && tail == Array(sent.suffix(tail.count)), "then the ring's tail, up to the last frame")
        #expect(ResumeTests.position(got.last ?? [])?.1 == 200)
        #expect(h.server.hubs[1].counters.lags.load(ordering: .relaxed) == 0, "not the browser's lag: no 4008 count")
        runner.send(.output, [9])
        #expect(relevant(remote) == [[2, 9]], "live again")
    }

    @Test func theEndOfThePodClosesRemoteBrowsersAndTheLastOneTakesTheMirrorAway() throws {
        let h = try harness { $0.pod.keepAlive = 5_000_000_000 }
        let key = pod(h)
        let runner = try h.runner(key, ext: true)
        let remote = try h.browser(key, on: 1)
        remote.close()
        #expect(h.server.hubs[1].mirrorCount == 0)
        let presence = runner.takeFrames().filter { $0.first == RelayFrameType.presence.rawValue }.last ?? []
        #expect(String(decoding: presence.dropFirst(), as: UTF8.self) == #"{"browsers":0,"writers":0}"#)
        h.advance(seconds: 6)
        #expect(runner.closeCode == .some(1000), "keep-alive over: no browser on any loop")
        // A pod ended with remote browsers in it closes them.
        let key2 = pod(h, "n")
        let r2 = try h.runner(key2)
        let b2 = try h.browser(key2, on: 1)
        r2.drop()
        h.advance(seconds: 31)
        #expect(b2.closeCode == .some(1001))
        #expect(h.server.hubs[1].mirrorCount == 0)
    }
}
