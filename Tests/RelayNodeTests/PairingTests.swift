import Framing
@testable import RelayNode

/// Pairing and routing between a runner and its browsers (docs/protocol.md
/// "Frames" and "Pod lifecycle"), on the embedded loop.
@Suite struct PairingTests {
    @Test func runnerFramesReachEveryBrowserAndInputReachesTheRunner() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p1")
        let a = try h.browser("p1"), b = try h.browser("p1")
        #expect(runner.takeTypes() == [RelayFrameType.resync.rawValue, RelayFrameType.resync.rawValue],
                "each browser that joins without a Snapshot to give it asks the runner for one")
        runner.send(.output, Array("hello".utf8))
        #expect(a.takeFrames() == [[UInt8](.output, "hello")])
        #expect(b.takeFrames() == [[UInt8](.output, "hello")])
        a.send(.input, Array("ls\r".utf8))
        b.send(.resize, RelayEnvelope.resize(cols: 80, rows: 24).dropFirst().map { $0 })
        let toRunner = runner.takeFrames()
        #expect(toRunner.count == 2)
        #expect(toRunner.first == [UInt8](.input, "ls\r"))
        #expect(toRunner.last?.first == RelayFrameType.resize.rawValue)
    }

    @Test func unknownTypesAreForwardedInTheirDirection() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        let browser = try h.browser("p")
        _ = runner.take()
        runner.send(0x7E, [1, 2])
        browser.send(0x7F, [3])
        #expect(browser.takeFrames() == [[0x7E, 1, 2]])
        #expect(runner.takeFrames() == [[0x7F, 3]])
    }

    @Test func podsAreSeparate() throws {
        let h = try RelayHarness()
        let r1 = try h.runner("one"), r2 = try h.runner("two")
        let b1 = try h.browser("one"), b2 = try h.browser("two")
        r1.send(.output, [1])
        r2.send(.output, [2])
        #expect(b1.takeFrames() == [[2, 1]])
        #expect(b2.takeFrames() == [[2, 2]])
    }

    @Test func aSecondRunnerReplacesTheFirst() throws {
        let h = try RelayHarness()
        let old = try h.runner("p")
        let browser = try h.browser("p")
        let new = try h.runner("p")
        #expect(old.closeCode == .some(1000))
        new.send(.output, [9])
        #expect(browser.takeFrames().last == [2, 9])
        browser.send(.input, [1])
        #expect(new.takeFrames().last == [3, 1])
    }

    @Test func theBrowserLimitClosesOneMoreWith1008() throws {
        let h = try RelayHarness { $0.pod.maxBrowsers = 2 }
        _ = try h.runner("p")
        let a = try h.browser("p"), b = try h.browser("p")
        let c = try h.browser("p")
        #expect(c.closeCode == .some(1008))
        #expect(a.closeCode == nil && b.closeCode == nil)
        // A place frees up when one leaves.
        a.close()
        let d = try h.browser("p")
        #expect(d.closeCode == nil)
    }

    @Test func theWrongRoleIsRefusedWith401BeforeTheUpgrade() throws {
        let h = try RelayHarness()
        let token = RelayHarness.token(pod: "p", runner: false)
        let peer = try h.upgrade("/runner/relay?token=\(token)")
        #expect(peer.status == 401)
        #expect(peer.responseHead.contains("invalid token type"))
        let forged = try h.upgrade("/browser/relay?token=\(RelayHarness.token(pod: "p", runner: false, secret: "other"))")
        #expect(forged.status == 401)
    }

    @Test func theTokenMayComeAsABearerHeaderOnTheUnstrippedPath() throws {
        let h = try RelayHarness()
        let runner = try h.upgrade("/relay/runner/relay", headers: [("Authorization", "Bearer \(RelayHarness.token(pod: "p", runner: true))")])
        #expect(runner.status == 101)
        let browser = try h.browser("p")
        runner.send(.output, [5])
        #expect(browser.takeFrames() == [[2, 5]])
    }
}
