import Framing
@testable import RelayNode

/// Liveness (docs/protocol.md "Liveness") and the close handshake, on
/// virtual time: a Ping every `pingInterval`, a connection heard from
/// nothing for two intervals is dropped, a Close is echoed, and a Close of
/// ours that is never answered ends in a TCP close after `closeTimeout`.
@Suite struct LivenessTests {
    static let interval = 10.0

    func harness(_ configure: (inout RelaySettings) -> Void = { _ in }) throws -> RelayHarness {
        try RelayHarness {
            $0.pingInterval = nanos(Self.interval)
            configure(&$0)
        }
    }

    // MARK: Pings

    @Test func theRelayPingsEveryConnectionEveryInterval() throws {
        let h = try harness()
        let runner = try h.runner("p")
        let browser = try h.browser("p")
        _ = runner.take(); _ = browser.take()
        h.advance(seconds: 9.5)
        #expect(runner.takePingCount() == 0 && browser.takePingCount() == 0, "not before the interval")
        h.advance(seconds: 1)
        #expect(runner.takePingCount() == 1)
        #expect(browser.takePingCount() == 1)
        h.advance(seconds: 10)
        #expect(runner.takePingCount() == 1)
        #expect(browser.takePingCount() == 1)
        h.advance(seconds: 50)
        #expect(runner.takePingCount() == 5)
        #expect(browser.takePingCount() == 5)
    }

    @Test func aPeerThatAnswersPingsStaysOpenIndefinitely() throws {
        let h = try harness()
        let runner = try h.runner("p")
        let browser = try h.browser("p")
        _ = runner.take(); _ = browser.take()
        h.advance(seconds: 100 * Self.interval)
        #expect(!runner.isClosed && !browser.isClosed)
        #expect(runner.closeCode == nil && browser.closeCode == nil)
        #expect(browser.takePingCount() == 100)
        runner.send(.output, [1])
        #expect(browser.takeFrames() == [[RelayFrameType.output.rawValue, 1]])
    }

    // MARK: Silent peers

    @Test func aSilentPeerIsClosedAfterTwoIntervalsNotBefore() throws {
        let h = try harness()
        let runner = try h.runner("p")
        let browser = try h.browser("p")
        browser.answersPings = false
        h.advance(seconds: 2 * Self.interval - 0.5)
        #expect(!browser.isClosed, "heard at t=0, pinged at t=10: not silent for two intervals yet")
        h.advance(seconds: 1)
        #expect(browser.isClosed)
        #expect(browser.closeCode == nil, "half-open: dropped without a Close handshake")
        #expect(!runner.isClosed, "the runner answered")
    }

    @Test func aSilentPeerThatJoinedMidIntervalIsClosedWithinThreeIntervals() throws {
        let h = try harness()
        _ = try h.runner("p")      // starts the loop's ping schedule at t=0
        h.advance(seconds: 5)
        let browser = try h.browser("p")
        browser.answersPings = false
        h.advance(seconds: 2 * Self.interval - 0.5)
        #expect(!browser.isClosed, "silent for less than two intervals")
        h.advance(seconds: Self.interval + 0.5)
        #expect(browser.isClosed, "the sweep after two silent intervals drops it")
    }

    @Test func anyBytesCountAsHeardNotOnlyPongs() throws {
        let h = try harness()
        let runner = try h.runner("p")
        let browser = try h.browser("p")
        browser.answersPings = false
        // Input every 5 s, never a Pong.
        for i in 0..<12 {
            browser.send(.input, [UInt8(i)])
            h.advance(seconds: 5)
        }
        #expect(!browser.isClosed)
        #expect(runner.takeFrames(ofType: .input).count == 12)
        // Then nothing at all.
        h.advance(seconds: 3 * Self.interval)
        #expect(browser.isClosed)
    }

    @Test func aPeerTheRelayStopsReadingIsNotTakenForSilent() throws {
        // The runner's socket takes 4 KiB and its peer stops reading, so the
        // runner's queue passes its bound and the pod stops reading its
        // browsers: a browser's Pongs then wait unread.
        let h = try harness { $0.outboundQueueBytes = 16 << 10 }
        let runner = try h.runner("p", sendBufferSize: 4096)
        let browser = try h.browser("p")
        runner.reads = false
        let big = [UInt8](repeating: 0x61, count: 20 << 10)
        var framesIn = h.framesIn
        for _ in 0..<3 { browser.send(.input, big) }
        #expect(h.framesIn == framesIn + 3)
        framesIn = h.framesIn
        browser.send(.input, Array("marker".utf8))
        #expect(h.framesIn == framesIn, "the browser is no longer read (backpressure)")
        // Six intervals; the runner keeps itself heard with unsolicited Pongs,
        // the browser answers every Ping, but nothing of it is read.
        h.advance(seconds: Int(6 * Self.interval)) { runner.sendFrame(.pong, []) }
        #expect(h.framesIn == framesIn, "still held back")
        #expect(!browser.isClosed, "held back by the relay, not silent")
        #expect(browser.closeCode == nil)
        #expect(!runner.isClosed)
        // The runner reads again: its queue drains, the browser is read again.
        runner.reads = true
        runner.transport.sendBufferSize = nil
        h.advance(seconds: 2)
        #expect(h.framesIn == framesIn + 1)
        #expect(runner.takeFrames(ofType: .input) == Array(repeating: [RelayFrameType.input.rawValue] + big, count: 3)
                + [[UInt8](.input, "marker")])
        h.advance(seconds: 3 * Self.interval)
        #expect(!browser.isClosed && !runner.isClosed)
    }

    // MARK: Close handshake

    @Test(arguments: [UInt16(1000), 1001, 4001])
    func aPeersCloseIsEchoedWithItsCodeAndTheRelayClosesTCP(code: UInt16) throws {
        let h = try harness()
        let runner = try h.runner("p")
        let browser = try h.browser("p")
        browser.close(code: code)
        #expect(browser.closeCode == .some(code))
        #expect(browser.transport.writeShutdown, "FIN right after the echoed Close")
        // The relay lingers for the peer's FIN, then closes.
        #expect(!browser.isClosed)
        browser.drop()
        #expect(browser.isClosed)
        #expect(runner.closeCode == nil)
    }

    @Test func aCloseWithoutACodeIsEchoedWithoutOne() throws {
        let h = try harness()
        _ = try h.runner("p")
        let browser = try h.browser("p")
        browser.sendFrame(.close, [])
        h.run()
        #expect(browser.closeCode == .some(nil))
        #expect(browser.transport.writeShutdown)
    }

    @Test func theRelaysTCPCloseFollowsAPeerCloseEvenWithoutThePeersFIN() throws {
        let h = try harness()
        _ = try h.runner("p")
        let browser = try h.browser("p")
        browser.close(code: 1000)
        h.advance(seconds: Double(h.settings.closeTimeout) / 1e9)
        #expect(browser.isClosed)
    }

    /// A browser the relay closes (one over the limit), with a 5 s close timeout.
    func refusedBrowser() throws -> (RelayHarness, Peer) {
        let h = try harness {
            $0.pod.maxBrowsers = 1
            $0.closeTimeout = nanos(5)
        }
        _ = try h.runner("p")
        _ = try h.browser("p")
        let extra = try h.browser("p")
        #expect(extra.closeCode == .some(1008))
        return (h, extra)
    }

    @Test func anUnansweredCloseOfTheRelaysEndsInATCPCloseAfterCloseTimeout() throws {
        let (h, extra) = try refusedBrowser()
        h.advance(seconds: 4.5)
        #expect(!extra.isClosed, "waiting for the peer's Close")
        #expect(!extra.transport.writeShutdown)
        h.advance(seconds: 1)
        #expect(extra.isClosed)
    }

    @Test func anAnsweredCloseOfTheRelaysClosesAtOnce() throws {
        let (h, extra) = try refusedBrowser()
        withExtendedLifetime(h) {
            extra.close(code: 1008)
            #expect(extra.transport.writeShutdown, "FIN without waiting for the close timeout")
            extra.drop()
            #expect(extra.isClosed)
            #expect(extra.everything.filter { if case .close = $0 { true } else { false } }.count == 1,
                    "the relay does not answer the answer")
        }
    }
}
