import Framing
@testable import Reactor
@testable import RelayNode

/// The relay's HTTP/2 side on the embedded loop: h2c by preface, admin
/// routes, RFC 8441 WebSockets and gRPC calls as pod streams, per-stream
/// bounds, the socket bound, drain.
@Suite struct HTTP2RelayTests {
    static let output = RelayFrameType.output.rawValue
    static let input = RelayFrameType.input.rawValue

    @Test func healthAnswersOverH2cOnThePlainPort() throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let id = peer.get("/health")
        #expect(peer.status(id) == "200")
        #expect(String(decoding: peer.streams[id]!.data, as: UTF8.self) == #"{"status":"ok"}"#)
        #expect(h.server.transports.total(.h2c) == 1)
        #expect(h.server.transports.total(.h1) == 0, "an HTTP/2 connection never counts as HTTP/1")
        let plain = try h.connect()
        plain.transport.peerWrite(Array("GET /health HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
        h.run()
        #expect(h.server.transports.total(.h1) == 1)
    }

    @Test func aRelayPathOverPlainGETIsRefused() throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let id = peer.get("/browser/relay?token=\(RelayHarness.token(pod: "p", runner: false))")
        #expect(peer.status(id) == "400")
    }

    @Test func aBadTokenGets401OverExtendedConnect() throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let id = peer.webSocket("/browser/relay?token=nope")
        #expect(peer.status(id) == "401")
        #expect(peer.streams[id]!.ended)
    }

    /// A runner and three browsers as streams of one connection, with two
    /// loops so that the pod's home is the other loop for one of them.
    @Test(arguments: [0, 1]) func runnerAndBrowsersShareOneConnection(acceptedOn loopIndex: Int) throws {
        let h = try RelayHarness(loops: 2)
        let pod = (0..<100).map { "h2-\($0)" }.first { h.home(of: $0) == 1 }!
        let peer = try H2Peer(harness: h, on: loopIndex)
        let runner = peer.webSocket("/runner/relay?token=\(RelayHarness.token(pod: pod, runner: true))")
        let browsers = (0..<3).map { _ in peer.webSocket("/relay/browser/relay?token=\(RelayHarness.token(pod: pod, runner: false))") }
        #expect(peer.status(runner) == "200")
        for b in browsers { #expect(peer.status(b) == "200") }
        let frames: [[UInt8]] = (0..<50).map { [Self.output] + Array("line \($0)\r\n".utf8) }
        for f in frames { peer.send(runner, Peer.clientFrame(.binary, f)) }
        for _ in 0..<5 { h.run(); peer.pump() }
        for b in browsers {
            let got = peer.messages(b).filter { $0.first == Self.output }
            #expect(got.count == frames.count && got == frames, "browser stream \(b) got \(got.count) of \(frames.count)")
        }
        peer.send(browsers[1], Peer.clientFrame(.binary, [Self.input] + Array("ls\r".utf8)))
        for _ in 0..<5 { h.run(); peer.pump() }
        #expect(peer.messages(runner).contains([Self.input] + Array("ls\r".utf8)))
        #expect(h.server.transports.open(.wsOverH2) == 4)
    }

    @Test func anHTTP1BrowserAndAnHTTP2BrowserGetTheSameFrames() throws {
        let h = try RelayHarness()
        let runner = try h.runner("mixed")
        let ws = try h.browser("mixed")
        let peer = try H2Peer(harness: h)
        let b = peer.webSocket("/browser/relay?token=\(RelayHarness.token(pod: "mixed", runner: false))")
        _ = ws.take()
        let frames: [[UInt8]] = (0..<20).map { [Self.output] + Array("x\($0)".utf8) }
        for f in frames { runner.send(f[0], Array(f.dropFirst())) }
        peer.pump()
        #expect(ws.takeFrames().filter { $0.first == Self.output } == frames)
        #expect(peer.messages(b).filter { $0.first == Self.output } == frames)
    }

    /// One stream stops giving back its window: it lags under the pod's
    /// policy, and the other stream of the same connection gets everything.
    @Test func aStreamThatStopsReadingLagsWithoutStallingItsNeighbour() throws {
        let h = try RelayHarness { $0.outboundQueueBytes = 64 << 10; $0.pod.lagLimit = 1000 }
        let runner = try h.runner("slow")
        let peer = try H2Peer(harness: h)
        let token = RelayHarness.token(pod: "slow", runner: false)
        let slow = peer.webSocket("/browser/relay?token=\(token)")
        let fast = peer.webSocket("/browser/relay?token=\(token)")
        peer.holding.insert(slow)
        let payload = [UInt8](repeating: 0x61, count: 8 << 10)
        let count = 600                // 4.8 MiB: past the slow stream's window and queue
        for i in 0..<count {
            runner.send(Self.output, Array("\(i):".utf8) + payload)
            if i % 20 == 0 { peer.pump() }
        }
        for _ in 0..<10 { h.run(); peer.pump() }
        let got = peer.messages(fast).filter { $0.first == Self.output }
        #expect(got.count == count, "the reading stream got \(got.count) of \(count)")
        #expect(h.counters.lags.load(ordering: .relaxed) >= 1, "the stream that stopped reading was lagged")
        #expect(peer.streams[slow]!.data.count <= Int(HTTP2Settings().streamWindow) + (64 << 10),
                "the held stream got at most its window (\(peer.streams[slow]!.data.count) bytes)")
    }

    /// Input backpressure over HTTP/2: when a pod's runner stops reading,
    /// the pod's browser stream stops getting its window back (the peer
    /// stops after one stream window), while a browser of another pod on the
    /// same connection goes on sending; once the runner reads again, the
    /// held input reaches it in order.
    @Test func aStalledRunnerHoldsBackOnlyItsPodsStreams() throws {
        let h = try RelayHarness { $0.outboundQueueBytes = 64 << 10 }
        let stalled = try h.upgrade("/runner/relay?token=\(RelayHarness.token(pod: "stalled", runner: true))", sendBufferSize: 0)
        let other = try h.runner("other")
        let peer = try H2Peer(harness: h)
        let held = peer.webSocket("/browser/relay?token=\(RelayHarness.token(pod: "stalled", runner: false))")
        let free = peer.webSocket("/browser/relay?token=\(RelayHarness.token(pod: "other", runner: false))")
        let chunk = [UInt8](repeating: 0x69, count: 16 << 10)
        // 3 MiB of input: past the runner's queue and past one stream window.
        for i in 0..<192 { peer.send(held, Peer.clientFrame(.binary, [Self.input, UInt8(i & 0xff)] + chunk)) }
        let unsent = peer.unsent(held)
        #expect(unsent > 0, "the held stream's window closed: \(unsent) bytes could not be sent")
        #expect(h.counters.lags.load(ordering: .relaxed) == 0)
        for i in 0..<100 { peer.send(free, Peer.clientFrame(.binary, [Self.input, UInt8(i)])) }
        #expect(peer.unsent(free) == 0, "the other pod's stream on the same connection still sends")
        #expect(other.takeFrames().filter { $0.first == Self.input }.count == 100)
        // The runner reads again: everything arrives, in order.
        stalled.transport.sendBufferSize = nil
        var got: [[UInt8]] = []
        for _ in 0..<200 {
            h.run()
            peer.pump()
            got += stalled.takeFrames().filter { $0.first == Self.input }
            if got.count == 192 { break }
        }
        #expect(got.count == 192 && got.enumerated().allSatisfy { $0.element[1] == UInt8($0.offset & 0xff) })
    }

    /// A peer that reads nothing: the connection's socket queue stops at
    /// the high-water mark, its streams' queues at their bounds.
    @Test func aPeerThatNeverReadsHoldsABoundedAmount() throws {
        let h = try RelayHarness { $0.outboundQueueBytes = 64 << 10; $0.pod.lagLimit = 1000 }
        let runner = try h.runner("deaf")
        let peer = try H2Peer(harness: h, sendBufferSize: 0)
        let token = RelayHarness.token(pod: "deaf", runner: false)
        let streams = (0..<4).map { _ in peer.webSocket("/browser/relay?token=\(token)") }
        _ = streams
        peer.reads = false
        let payload = [UInt8](repeating: 0x62, count: 4 << 10)
        for _ in 0..<2000 { runner.send(Self.output, payload) }   // 8 MiB
        h.run()
        // The high-water mark, plus at most one DATA frame and a few control frames past it.
        let queued = try #require(peer.connection).queuedBytes
        #expect(queued <= HTTP2ServerConnection.socketHighWater + (16 << 10) + 1024, "queued on the socket: \(queued)")
        #expect(h.counters.lags.load(ordering: .relaxed) >= 1)
    }

    @Test func grpcRunnerAndBrowserExchangeFrames() throws {
        let h = try RelayHarness(loops: 2)
        let pod = (0..<100).map { "g-\($0)" }.first { h.home(of: $0) == 1 }!
        let peer = try H2Peer(harness: h, on: 0)
        let runner = peer.attach(token: RelayHarness.token(pod: pod, runner: true))
        let browser = peer.attach(token: RelayHarness.token(pod: pod, runner: false))
        #expect(peer.status(runner) == "200" && peer.status(browser) == "200")
        let frames: [[UInt8]] = [[Self.output] + Array("hello".utf8), [Self.output] + [UInt8](repeating: 7, count: 70_000), [Self.output]]
        for f in frames { peer.send(runner, GRPCFrameCodec.message(f)) }
        for _ in 0..<5 { h.run(); peer.pump() }
        #expect(peer.grpcMessages(browser).filter { $0.first == Self.output } == frames)
        peer.send(browser, GRPCFrameCodec.message([Self.input, 0x6c]))
        for _ in 0..<5 { h.run(); peer.pump() }
        #expect(peer.grpcMessages(runner).contains([Self.input, 0x6c]))
        #expect(h.server.transports.open(.grpc) == 2)
    }

    @Test func grpcRefusalsAreTrailersOnly() throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let id = peer.attach(token: "bad")
        #expect(peer.status(id) == "200")
        #expect(peer.streams[id]!.headers.first?.value("grpc-status") == "16")
        #expect(peer.streams[id]!.ended && peer.streams[id]!.data.isEmpty)
    }

    @Test func grpcMessageOverTheLimitIsResourceExhausted() throws {
        let h = try RelayHarness { $0.maxMessageSize = 4096 }
        let peer = try H2Peer(harness: h)
        let id = peer.attach(token: RelayHarness.token(pod: "big", runner: true))
        peer.send(id, GRPCFrameCodec.message([Self.output] + [UInt8](repeating: 1, count: 10_000)))
        h.run(); peer.pump()
        #expect(peer.trailers(id)?.value("grpc-status") == "8")
    }

    @Test func grpcTimeoutEndsTheCallWithDeadlineExceeded() throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let id = peer.request([HTTP2Header(":method", "POST"), HTTP2Header(":scheme", "http"), HTTP2Header(":path", RelayServer.attachMethod),
                               HTTP2Header(":authority", "relay.test"), HTTP2Header("content-type", "application/grpc"),
                               HTTP2Header("grpc-timeout", "2S"),
                               HTTP2Header("authorization", "Bearer \(RelayHarness.token(pod: "late", runner: false))")], body: true)
        #expect(peer.status(id) == "200")
        h.advance(seconds: 1)
        peer.pump()
        #expect(peer.trailers(id) == nil)
        h.advance(seconds: 1.5)
        peer.pump()
        #expect(peer.trailers(id)?.value("grpc-status") == "4")
    }

    /// Drain: GOAWAY naming the last stream, Close 1001 on each WebSocket
    /// stream, UNAVAILABLE on each call, and new streams refused.
    @Test func drainSendsGoAwayAndEndsEveryStream() throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let ws = peer.webSocket("/browser/relay?token=\(RelayHarness.token(pod: "d", runner: false))")
        let call = peer.attach(token: RelayHarness.token(pod: "d", runner: false))
        h.server.beginShutdown(signal: 15)
        h.run(); peer.pump()
        #expect(peer.goAway?.code == 0)
        #expect(peer.goAway?.lastStream == call)
        var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 1 << 20))
        var code: UInt16?
        var bytes = peer.streams[ws]!.data
        bytes.withUnsafeMutableBytes { buf in _ = decoder.feed(buf) { if case .close(let c, _) = $0 { code = c } } }
        #expect(code == 1001)
        #expect(peer.trailers(call)?.value("grpc-status") == "14")
    }

    /// Found by loadgen: when a connection closes, its streams close one by
    /// one, and the pod tells the streams still open (presence): those
    /// sends must not schedule a flush of the closed connection.
    @Test func streamsClosingWithTheirConnectionDoNotTouchIt() throws {
        let h = try RelayHarness()
        let runner = try h.runner("gone")
        let peer = try H2Peer(harness: h)
        let token = RelayHarness.token(pod: "gone", runner: false)
        let streams = (0..<3).map { _ in peer.webSocket("/browser/relay?token=\(token)&ext=1") }
        for s in streams { #expect(peer.status(s) == "200") }
        peer.transport.peerReset()
        h.run()
        h.advance(seconds: 1)
        #expect(peer.transport.isClosed)
        #expect(peer.connection == nil, "the relay let go of the connection")
        #expect(h.server.transports.open(.h2c) == 0)
        #expect(h.server.transports.open(.wsOverH2) == 0)
        _ = runner
    }

    /// Rapid reset (CVE-2023-44487): streams opened and reset faster than
    /// the bucket refills end the connection with ENHANCE_YOUR_CALM; the
    /// same number spread over time does not.
    @Test(arguments: [false, true]) func rapidResetEndsTheConnectionWithEnhanceYourCalm(spread: Bool) throws {
        let h = try RelayHarness()
        let peer = try H2Peer(harness: h)
        let token = RelayHarness.token(pod: "reset", runner: false)
        let n = HTTP2Settings().resetBurst + 20
        for i in 0..<n {
            let id = peer.webSocket("/browser/relay?token=\(token)")
            peer.reset(id)
            if spread && i % 50 == 49 { h.advance(seconds: 1) }
        }
        h.run(); peer.pump()
        if spread {
            #expect(peer.goAway == nil)
            #expect(!peer.transport.isClosed)
        } else {
            #expect(peer.goAway?.code == HTTP2ErrorCode.enhanceYourCalm.rawValue)
            // Closed after the GOAWAY has left (and the linger for the peer's FIN).
            h.advance(seconds: 3)
            #expect(peer.transport.isClosed)
            #expect(h.server.transports.goaways.withLock { $0 }.keys.contains { $0.hasPrefix("rapid reset") })
        }
    }
}
