import Framing
@testable import RelayNode

/// The slow-consumer policy (docs/protocol.md "Slow consumers"): a browser
/// whose outbound queue passes the bound loses its queued replayable frames,
/// gets Lagged (ext) + Snapshot + tail once it drains, and is closed with
/// 4008 after `lagLimit` lags within `lagWindow`. Nobody else slows down.
@Suite struct SlowConsumerTests {
    static let bound = 16 << 10

    func harness() throws -> RelayHarness {
        try RelayHarness {
            $0.outboundQueueBytes = Self.bound
            $0.pingInterval = 3600_000_000_000
        }
    }

    func output(_ i: Int) -> [UInt8] { [RelayFrameType.output.rawValue] + Array(repeating: UInt8(i & 0xFF), count: 1000) }

    /// Pushes frames until the slow browser has lagged (its relay-side
    /// queue passed the bound), returning the frames pushed.
    func pushUntilLagged(_ h: RelayHarness, runner: Peer, from first: Int) -> [[UInt8]] {
        let lagsBefore = h.counters.lags.load(ordering: .relaxed)
        var sent: [[UInt8]] = []
        var i = first
        while h.counters.lags.load(ordering: .relaxed) == lagsBefore {
            let f = output(i)
            runner.send(f[0], Array(f.dropFirst()))
            sent.append(f)
            i += 1
            precondition(sent.count < 1000, "never lagged")
        }
        // A few more after the lag: skipped live, back in the tail.
        for _ in 0..<3 {
            let f = output(i)
            runner.send(f[0], Array(f.dropFirst()))
            sent.append(f)
            i += 1
        }
        return sent
    }

    @Test(arguments: [false, true])
    func aLaggingBrowserCatchesUpWithSnapshotAndTail(ext: Bool) throws {
        let h = try harness()
        let runner = try h.runner("p")
        let snapshot = [UInt8](.snapshot, #"{"cols":80}"#)
        runner.send(snapshot[0], Array(snapshot.dropFirst()))
        let fast = try h.browser("p")
        let slow = try h.browser("p", ext: ext, sendBufferSize: 4096)
        #expect(slow.takeFrames().first == snapshot)
        _ = fast.takeFrames()
        slow.reads = false

        let sent = pushUntilLagged(h, runner: runner, from: 1)
        // The fast browser got everything, in order.
        #expect(fast.takeFrames() == sent)

        slow.reads = true
        slow.drain()
        let got = slow.takeFrames().filter { $0.first != RelayFrameType.presence.rawValue }
        // What arrived before the lag is a prefix of what was sent.
        let lagAt = got.firstIndex { $0.first == (ext ? RelayFrameType.lagged.rawValue : RelayFrameType.snapshot.rawValue) }
        let before = Array(got[..<(lagAt ?? got.count)])
        #expect(before == Array(sent.prefix(before.count)))
        #expect(before.count < sent.count)
        var rest = Array(got[(lagAt ?? got.count)...])
        if ext {
            let lagged = rest.removeFirst()
            #expect(lagged.first == RelayFrameType.lagged.rawValue)
            let dropped = lagged.dropFirst().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(dropped > 0)
            #expect(h.counters.droppedFrames.load(ordering: .relaxed) == Int(dropped))
            #expect(before.count + Int(dropped) == sent.count, "every frame it missed is counted once")
        }
        #expect(rest.first == snapshot, "catch-up starts with the Snapshot")
        // Then the ring's tail after that Snapshot, which is every Output sent.
        var tail = Array(rest.dropFirst())
        if ext {
            let position = tail.removeLast()
            #expect(position.first == RelayFrameType.position.rawValue)
            #expect(position.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } == UInt64(sent.count))
        }
        #expect(tail == sent)
        // And it is live again.
        runner.send(.output, [42])
        #expect(slow.takeFrames().filter { $0.first != RelayFrameType.presence.rawValue } == [[2, 42]])
        #expect(slow.closeCode == nil)
    }

    /// Many frames in one read go to each browser as one run: a lag drops
    /// and counts them frame by frame all the same.
    @Test func framesOfOneReadLagAndCountAsFrames() throws {
        let h = try harness()
        let runner = try h.runner("p")
        let fast = try h.browser("p")
        let slow = try h.browser("p", ext: true, sendBufferSize: 4096)
        _ = runner.take(); _ = fast.take(); _ = slow.take()
        slow.reads = false
        // ~200 KiB: several reads of 64 KiB, each one run; the first run is
        // the entry in progress, the next ones pass the 16 KiB bound.
        let sent = runner.sendAtOnce((0..<1000).map { i in
            [RelayFrameType.output.rawValue] + Array(repeating: UInt8(i & 0xFF), count: 200)
        })
        #expect(fast.takeFrames().filter { $0.first != RelayFrameType.presence.rawValue } == sent)
        #expect(h.counters.deliveries.load(ordering: .relaxed) >= 1000, "the fast browser's deliveries are counted per frame")
        slow.reads = true
        slow.drain()
        let got = slow.takeFrames().filter { $0.first != RelayFrameType.presence.rawValue }
        guard let i = got.firstIndex(where: { $0.first == RelayFrameType.lagged.rawValue }) else {
            Issue.record("no Lagged"); return
        }
        let dropped = got[i].dropFirst().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(i + Int(dropped) == sent.count, "received before the lag + dropped = sent")
        #expect(Array(got[..<i]) == Array(sent.prefix(i)))
        #expect(Array(got[(i + 1)...].dropLast()) == sent, "then the ring's tail (no Snapshot yet): every frame")
    }

    /// `slow` stops reading until it has lagged, then reads everything.
    /// Returns the number of the next frame to push.
    func lagOnce(_ h: RelayHarness, runner: Peer, slow: Peer, from next: Int) -> Int {
        slow.reads = false
        let pushed = pushUntilLagged(h, runner: runner, from: next).count
        slow.reads = true
        slow.drain()
        return next + pushed
    }

    @Test func theThirdLagWithinTheWindowClosesWith4008() throws {
        let h = try harness()
        let runner = try h.runner("p")
        let slow = try h.browser("p", sendBufferSize: 4096)
        _ = runner.take()
        var next = 1
        for round in 1...3 {
            next = lagOnce(h, runner: runner, slow: slow, from: next)
            if round < 3 {
                #expect(slow.closeCode == nil, "lag \(round) of 3")
            }
        }
        #expect(slow.closeCode == .some(4008))
        #expect(h.counters.lags.load(ordering: .relaxed) == 3)
    }

    @Test func lagsFurtherApartThanTheWindowAreForgiven() throws {
        let h = try RelayHarness {
            $0.outboundQueueBytes = Self.bound
            $0.pod.lagWindow = 60_000_000_000
        }
        let runner = try h.runner("p")
        let slow = try h.browser("p", sendBufferSize: 4096)
        var next = 1
        for _ in 1...4 {
            next = lagOnce(h, runner: runner, slow: slow, from: next)
            h.advance(seconds: 31)      // two lags are never within 60 s of a third
        }
        #expect(slow.closeCode == nil)
        #expect(h.counters.lags.load(ordering: .relaxed) == 4)
    }

    @Test func aRunnerWithAFullQueueHoldsBackItsBrowsersInputNeverDropsIt() throws {
        let h = try harness()
        let runner = try h.upgrade("/runner/relay?token=\(RelayHarness.token(pod: "p", runner: true))", sendBufferSize: 4096)
        let browser = try h.browser("p")
        _ = runner.take()
        runner.reads = false
        var sent: [[UInt8]] = []
        for i in 0..<40 {
            let f = [RelayFrameType.input.rawValue] + Array(repeating: UInt8(i), count: 1000)
            browser.send(f[0], Array(f.dropFirst()))      // one read each
            sent.append(f)
        }
        #expect(browser.transport.pendingInbound > 0, "the browser's input waits unread (TCP backpressure)")
        runner.reads = true
        runner.drain()
        browser.drain()
        #expect(runner.takeFrames().filter { $0.first == RelayFrameType.input.rawValue } == sent)
        #expect(h.counters.refusedInput.load(ordering: .relaxed) == 0)
    }
}

extension Peer {
    /// Reads until the relay has nothing more to send.
    func drain() {
        for _ in 0..<10_000 {
            poll()
            harness.run()
            if transport.pendingOutbound == 0 {
                harness.run()
                if transport.pendingOutbound == 0 { return }
            }
        }
        Issue.record("the relay kept writing")
    }
}
