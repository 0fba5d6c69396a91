import Framing
@testable import RelayNode

/// The pod lifecycle timers and input rules (docs/protocol.md "Pod
/// lifecycle"), on virtual time: pending timeout, runner reconnect grace,
/// keep-alive, input held while the runner is away, read-only viewers.
@Suite struct LifecycleTimerTests {
    static let disconnected = RelayFrameType.runnerDisconnected.rawValue
    static let reconnected = RelayFrameType.runnerReconnected.rawValue

    // MARK: Pending timeout

    @Test func aBrowserAloneIsClosedAfterThePendingTimeoutNotBefore() throws {
        let h = try RelayHarness { $0.pod.pendingTimeout = nanos(10) }
        let browser = CloseTap(try h.browser("p"))
        h.advance(seconds: 9.5)
        #expect(browser.close == nil, "still waiting for its runner")
        h.advance(seconds: 1)
        #expect(browser.close?.code == 1001)
        #expect(browser.close?.reason == "pending connection timeout")
    }

    @Test func aRunnerAloneIsClosedAfterThePendingTimeoutNotBefore() throws {
        let h = try RelayHarness { $0.pod.pendingTimeout = nanos(10) }
        let runner = CloseTap(try h.runner("p"))
        h.advance(seconds: 9.5)
        #expect(runner.close == nil)
        h.advance(seconds: 1)
        #expect(runner.close?.code == 1001)
        #expect(runner.close?.reason == "pending connection timeout")
    }

    /// A connection closed for the pending timeout leaves its pod at once,
    /// not when its peer answers the Close: the next counterpart to come
    /// waits as pending itself.
    @Test func aRunnerTimedOutAsPendingIsGoneBeforeItsPeerAnswers() throws {
        let h = try RelayHarness {
            $0.pod.pendingTimeout = nanos(10)
            $0.pingInterval = nanos(3600)
        }
        let runner = try h.runner("p")
        h.advance(seconds: 10.5)
        #expect(runner.closeCode == .some(1001))
        #expect(!runner.isClosed, "its peer has not answered yet")
        let browser = try h.browser("p")
        #expect(!browser.takeTypes().contains(Self.disconnected), "not a runner away: none is there")
        #expect(AdminReport.stats(h.server.hubs).contains("\"pending_subscribers\":1"))
        h.advance(seconds: 10.5)
        #expect(browser.closeCode == .some(1001), "it waited as pending, and timed out")
    }

    @Test func aBrowserTimedOutAsPendingIsGoneBeforeItsPeerAnswers() throws {
        let h = try RelayHarness {
            $0.pod.pendingTimeout = nanos(10)
            $0.pingInterval = nanos(3600)
        }
        let browser = try h.browser("p")
        h.advance(seconds: 10.5)
        #expect(browser.closeCode == .some(1001))
        #expect(!browser.isClosed)
        #expect(AdminReport.stats(h.server.hubs).contains("\"pending_subscribers\":0"))
        let runner = try h.runner("p")
        h.advance(seconds: 10.5)
        #expect(runner.closeCode == .some(1001), "no browser was there for it: pending, timed out")
    }

    @Test(arguments: [true, false])
    func pairingCancelsThePendingTimeout(runnerFirst: Bool) throws {
        let h = try RelayHarness { $0.pod.pendingTimeout = nanos(10) }
        let first = try runnerFirst ? h.runner("p") : h.browser("p")
        h.advance(seconds: 9.5)
        let second = try runnerFirst ? h.browser("p") : h.runner("p")
        let (runner, browser) = runnerFirst ? (first, second) : (second, first)
        h.advance(seconds: 30)
        #expect(first.closeCode == nil && second.closeCode == nil)
        #expect(!first.isClosed && !second.isClosed)
        _ = browser.take()
        runner.send(.output, [42])
        #expect(browser.takeFrames() == [[RelayFrameType.output.rawValue, 42]], "still paired")
    }

    @Test func aSecondBrowserAfterPairingGetsNoPendingTimeout() throws {
        let h = try RelayHarness { $0.pod.pendingTimeout = nanos(10) }
        _ = try h.runner("p")
        let a = try h.browser("p")
        h.advance(seconds: 5)
        let b = try h.browser("p")
        h.advance(seconds: 20)
        #expect(a.closeCode == nil && b.closeCode == nil)
    }

    // MARK: Runner reconnect grace

    @Test(arguments: [true, false])
    func aRunnerLeavingSendsRunnerDisconnectedToEveryBrowser(withClose: Bool) throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let a = try h.browser("p"), b = try h.browser("p")
        _ = a.take(); _ = b.take()
        if withClose { runner.close() } else { runner.drop() }
        #expect(a.takeTypes() == [Self.disconnected])
        #expect(b.takeTypes() == [Self.disconnected])
        #expect(a.closeCode == nil && b.closeCode == nil, "the browsers wait for the runner")
    }

    @Test func aRunnerReturningWithinTheGraceSendsRunnerReconnected() throws {
        let h = try RelayHarness { $0.pod.runnerReconnectTimeout = nanos(10) }
        let old = try h.runner("p")
        let a = try h.browser("p"), b = try h.browser("p")
        old.close()
        _ = a.take(); _ = b.take()
        h.advance(seconds: 9.5)
        #expect(a.takeTypes() == [] && a.closeCode == nil)
        let new = try h.runner("p")
        #expect(a.takeTypes() == [Self.reconnected])
        #expect(b.takeTypes() == [Self.reconnected])
        // The grace timer is gone: nothing happens when it would have fired.
        h.advance(seconds: 30)
        #expect(a.closeCode == nil && b.closeCode == nil && new.closeCode == nil)
        new.send(.output, [7])
        #expect(a.takeFrames() == [[RelayFrameType.output.rawValue, 7]])
    }

    @Test func browsersAreClosedWith1001WhenTheRunnerDoesNotReturn() throws {
        let h = try RelayHarness { $0.pod.runnerReconnectTimeout = nanos(10) }
        let runner = try h.runner("p")
        let a = CloseTap(try h.browser("p")), b = try h.browser("p")
        runner.drop()
        h.advance(seconds: 9.5)
        #expect(a.close == nil && b.closeCode == nil)
        h.advance(seconds: 1)
        #expect(a.close?.code == 1001)
        #expect(a.close?.reason == "runner disconnected")
        #expect(b.closeCode == .some(1001))
        // The pod is gone: a runner now starts a new one, alone.
        #expect(h.counters.pods.load(ordering: .relaxed) == 0)
    }

    @Test func aBrowserJoiningWhileTheRunnerIsAwayGetsRunnerDisconnectedAtOnce() throws {
        let h = try RelayHarness {
            $0.pod.runnerReconnectTimeout = nanos(20)
            $0.pod.pendingTimeout = nanos(5)
        }
        let runner = try h.runner("p")
        let a = try h.browser("p")
        runner.close()
        h.advance(seconds: 3)
        let late = try h.browser("p")
        #expect(late.takeTypes() == [Self.disconnected])
        // It waits for the runner under the reconnect grace, not the
        // (shorter) pending timeout.
        h.advance(seconds: 10)
        #expect(late.closeCode == nil && a.closeCode == nil)
        _ = try h.runner("p")
        #expect(late.takeTypes() == [Self.reconnected])
    }

    @Test func theLastBrowserLeavingWhileTheRunnerIsAwayKeepsTheGrace() throws {
        let h = try RelayHarness { $0.pod.runnerReconnectTimeout = nanos(10) }
        let runner = try h.runner("p")
        let a = try h.browser("p")
        runner.close()
        a.close()
        h.advance(seconds: 5)
        let b = try h.browser("p")
        #expect(b.takeTypes() == [Self.disconnected], "same pod, runner still away")
    }

    // MARK: Keep-alive

    @Test func theRunnerIsClosedWith1000KeepAliveAfterTheLastBrowserLeaves() throws {
        let h = try RelayHarness { $0.pod.keepAlive = nanos(10) }
        let runner = CloseTap(try h.runner("p"))
        let a = try h.browser("p"), b = try h.browser("p")
        a.close()
        h.advance(seconds: 9.5)
        #expect(runner.close == nil, "one browser is still there")
        b.close()
        h.advance(seconds: 9.5)
        #expect(runner.close == nil)
        h.advance(seconds: 1)
        #expect(runner.close?.code == 1000)
        #expect(runner.close?.reason == "no subscribers")
    }

    @Test func aBrowserJoiningWithinKeepAliveKeepsThePod() throws {
        let h = try RelayHarness { $0.pod.keepAlive = nanos(10) }
        let runner = try h.runner("p")
        let a = try h.browser("p")
        runner.send(.output, [1])
        a.close()
        h.advance(seconds: 9.5)
        let b = try h.browser("p")
        h.advance(seconds: 30)
        #expect(runner.closeCode == nil && b.closeCode == nil)
        // Same pod: the new browser got the earlier output from the ring.
        #expect(b.takeFrames().first == [RelayFrameType.output.rawValue, 1])
        runner.send(.output, [2])
        #expect(b.takeFrames() == [[RelayFrameType.output.rawValue, 2]])
    }

    // MARK: Input held while the runner is away

    @Test func inputSentWhileTheRunnerIsAwayReachesTheReturningRunnerInOrder() throws {
        let h = try RelayHarness()
        let old = try h.runner("p")
        let a = try h.browser("p"), b = try h.browser("p", ext: true)
        old.close()
        a.send(.input, Array("one".utf8))
        b.send(.input, Array("two".utf8))
        a.send(.resize, Array(RelayEnvelope.resize(cols: 100, rows: 40).dropFirst()))
        a.send(.input, Array("three".utf8))
        h.advance(seconds: 5)
        let new = try h.runner("p")
        #expect(new.takeFrames() == [
            [RelayFrameType.resync.rawValue],             // browsers without a Snapshot
            [UInt8](.input, "one"), [UInt8](.input, "two"),
            RelayEnvelope.resize(cols: 100, rows: 40), [UInt8](.input, "three"),
        ])
        #expect(h.refusedInput == 0)
        // Delivered once: live input now goes straight through.
        a.send(.input, Array("four".utf8))
        #expect(new.takeFrames() == [[UInt8](.input, "four")])
    }

    @Test func inputPastTheHeldBytesIsRefusedAndExtBrowsersGet503() throws {
        // Each input below is 4 bytes with its type byte: two fill the buffer exactly.
        let h = try RelayHarness { $0.pod.heldInputBytes = 8 }
        let runner = try h.runner("p")
        let plain = try h.browser("p"), ext = try h.browser("p", ext: true)
        runner.close()
        _ = plain.take(); _ = ext.take()
        ext.send(.input, Array("aaa".utf8))
        plain.send(.input, Array("bbb".utf8))
        #expect(h.refusedInput == 0, "exactly at the limit is still held")
        #expect(errorCodes(ext.takeFrames()).isEmpty)
        ext.send(.input, Array("ccc".utf8))
        plain.send(.input, Array("d".utf8))
        #expect(h.refusedInput == 2)
        #expect(errorCodes(ext.takeFrames()) == [503])
        #expect(plain.takeFrames().isEmpty, "no Error frames without ext=1")
        #expect(ext.closeCode == nil && plain.closeCode == nil, "refused, not closed")
        let new = try h.runner("p")
        #expect(new.takeFrames(ofType: .input) == [[UInt8](.input, "aaa"), [UInt8](.input, "bbb")])
        // The buffer was emptied: the next absence holds input again.
        new.close()
        ext.send(.input, Array("eee".utf8))
        #expect(errorCodes(ext.takeFrames()).isEmpty)
        let third = try h.runner("p")
        #expect(third.takeFrames(ofType: .input) == [[UInt8](.input, "eee")])
    }

    @Test func heldInputIsDroppedWhenTheRunnerNeverReturns() throws {
        let h = try RelayHarness { $0.pod.runnerReconnectTimeout = nanos(10) }
        let runner = try h.runner("p")
        let a = try h.browser("p")
        runner.close()
        a.send(.input, Array("lost".utf8))
        h.advance(seconds: 11)
        #expect(a.closeCode == .some(1001))
        // A new pod under the same key: nothing of the old one's input.
        let newRunner = try h.runner("p")
        _ = try h.browser("p")
        #expect(newRunner.takeFrames(ofType: .input).isEmpty)
    }

    // MARK: Read-only viewers

    static let refusedKinds: [(RelayFrameType, [UInt8])] = [
        (.input, Array("rm -rf /\r".utf8)),
        (.resize, Array(RelayEnvelope.resize(cols: 1, rows: 1).dropFirst())),
        (.resync, []),
        (.acpCommand, Array(#"{"cmd":"x"}"#.utf8)),
    ]

    @Test func aReadOnlyViewerHasInputResizeResyncAndAcpCommandRefused() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let viewer = try h.browser("p", scope: "read")
        let extViewer = try h.browser("p", ext: true, scope: "read")
        _ = runner.take(); _ = viewer.take(); _ = extViewer.take()
        for (type, payload) in Self.refusedKinds {
            viewer.send(type, payload)
            extViewer.send(type, payload)
        }
        #expect(runner.takeFrames().isEmpty, "nothing of a viewer's reaches the runner")
        #expect(h.refusedInput == 8)
        #expect(errorCodes(extViewer.takeFrames()) == [403, 403, 403, 403])
        #expect(viewer.takeFrames().isEmpty, "no Error frames without ext=1")
        #expect(viewer.closeCode == nil && extViewer.closeCode == nil, "refused, not closed")
        // What a viewer is for still works.
        runner.send(.output, Array("hi".utf8))
        #expect(viewer.takeFrames() == [[UInt8](.output, "hi")])
        #expect(extViewer.takeFrames(ofType: .output) == [[UInt8](.output, "hi")])
    }

    @Test func aWriterNextToAViewerIsNotRefused() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        _ = try h.browser("p", scope: "read")
        let writer = try h.browser("p", ext: true)
        _ = runner.take(); _ = writer.take()
        for (type, payload) in Self.refusedKinds { writer.send(type, payload) }
        #expect(runner.takeTypes() == Self.refusedKinds.map { $0.0.rawValue })
        #expect(h.refusedInput == 0)
        #expect(errorCodes(writer.takeFrames()).isEmpty)
    }

    @Test func aViewersInputIsRefusedNotHeldWhileTheRunnerIsAway() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let viewer = try h.browser("p", ext: true, scope: "read")
        runner.close()
        _ = viewer.take()
        viewer.send(.input, Array("x".utf8))
        #expect(errorCodes(viewer.takeFrames()) == [403])
        #expect(h.refusedInput == 1)
        let new = try h.runner("p")
        #expect(new.takeFrames(ofType: .input).isEmpty)
    }
}
