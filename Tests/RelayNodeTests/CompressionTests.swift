import Framing
@testable import Reactor
@testable import RelayNode

/// permessage-deflate on the relay (embedded loop): negotiation in the
/// upgrade, runner frames compressed once per loop and shared, client
/// messages inflated under the message limit.
@Suite struct CompressionTests {
    static let offer = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
    static let output = RelayFrameType.output.rawValue

    /// What a compressing client sees: the relay's frames, inflated.
    struct Reader: ~Copyable {
        var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 1 << 24, compressed: true))
        let codec = PerMessageDeflateCodec()
        var messages: [[UInt8]] = []
        /// Frames that came with RSV1 set.
        var compressedFrames = 0

        /// Reads the relay's bytes (the response head first, if it is still there).
        mutating func read(_ peer: Peer) {
            var raw = peer.transport.peerRead()
            if String(decoding: raw.prefix(8), as: UTF8.self) == "HTTP/1.1", let end = Peer.find([13, 10, 13, 10], in: raw) {
                raw.removeFirst(end + 4)
            }
            var i = 0
            while i + 1 < raw.count {        // count RSV1 frames (server frames are unmasked)
                let (h, n) = GRPCStream.serverFrameSafe(raw, at: i)
                if raw[i] & 0x40 != 0 { compressedFrames += 1 }
                i += h + n
            }
            let codec = self.codec
            var got: [[UInt8]] = []
            raw.withUnsafeMutableBytes { buf in
                _ = decoder.feed(buf, inflater: codec) { if case .message(_, let p, _) = $0 { got.append(Array(p)) } }
            }
            messages += got
        }
    }

    func compressingBrowser(_ h: RelayHarness, _ pod: String, offer: (String, String) = offer, id: Int = 0) throws -> Peer {
        let peer = try h.connect()
        var head = "GET /browser/relay?token=\(RelayHarness.token(pod: pod, runner: false)) HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(offer.0): \(offer.1)\r\n\r\n"
        peer.transport.peerWrite(Array(head.utf8))
        h.run()
        return peer
    }

    /// A terminal line of 90-odd bytes (over the 64-byte minimum).
    static func text(_ i: Int) -> [UInt8] {
        [output] + Array("\u{1b}[32m[\(i)/2000] compiling Sources/RelayNode/Pods/PodChannel.swift ... ok\u{1b}[0m\r\n".utf8)
    }

    @Test func anOfferIsAcceptedAndRunnerFramesArriveCompressed() throws {
        let h = try RelayHarness()
        let runner = try h.runner("z")
        let browser = try compressingBrowser(h, "z")
        #expect(browser.status == 101)
        #expect(browser.responseHead.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"))
        let frames = (0..<50).map(Self.text) + [[Self.output, 1, 2, 3]]
        for f in frames { runner.send(f[0], Array(f.dropFirst())) }
        var reader = Reader()
        reader.read(browser)
        #expect(reader.messages.filter { $0.first == Self.output } == frames)
        #expect(reader.compressedFrames == 50, "every frame of 64 bytes or more compressed, the small one not")
    }

    @Test(arguments: [
        ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10"),
        ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame"),
        ("X-Nothing", "1"),
    ])
    func offersThatCannotBeHonouredLeaveTheConnectionUncompressed(_ offer: (String, String)) throws {
        let h = try RelayHarness()
        let browser = try compressingBrowser(h, "n", offer: offer)
        let head = String(decoding: browser.transport.peerRead(), as: UTF8.self)
        #expect(head.hasPrefix("HTTP/1.1 101"), "never the handshake: \(head.prefix(40))")
        #expect(!head.contains("Sec-WebSocket-Extensions"))
    }

    @Test func compressionOffAnswersNoOffer() throws {
        let h = try RelayHarness { $0.compression = "off" }
        let browser = try compressingBrowser(h, "o")
        #expect(!String(decoding: browser.transport.peerRead(), as: UTF8.self).contains("Sec-WebSocket-Extensions"))
    }

    /// Zero copy holds: 2,000 frames to 1 and to 40 compressing browsers
    /// cost the same compressions (one per frame). (Slab allocations are
    /// compared in test_compression.py, in a process of their own: the
    /// counter is process-wide, and other suites may run beside this one.)
    @Test func compressionsAndAllocationsDoNotGrowWithSubscribers() throws {
        var costs: [(Int, Int)] = []
        for browsers in [1, 40] {
            let h = try RelayHarness { $0.pod.maxBrowsers = 100 }
            let runner = try h.runner("zc")
            let peers = try (0..<browsers).map { _ in try compressingBrowser(h, "zc") }
            for p in peers { _ = p.transport.peerRead() }
            let c0 = h.server.compression.compressions.load(ordering: .relaxed)
            let s0 = Slab.allocations.load(ordering: .relaxed)
            for i in 0..<2000 {
                let f = Self.text(i)
                runner.send(f[0], Array(f.dropFirst()))
                if i % 100 == 99 { for p in peers { _ = p.transport.peerRead() } }
            }
            costs.append((h.server.compression.compressions.load(ordering: .relaxed) - c0,
                          Slab.allocations.load(ordering: .relaxed) - s0))
            _ = s0
            for p in peers { _ = p.transport.peerRead() }
        }
        #expect(costs[0].0 == 2000, "one compression per frame")
        #expect(costs[1].0 == costs[0].0, "the same with 40 browsers: \(costs)")
    }

    /// The replay ring sent again to browsers that attach is compressed
    /// once, not once per browser.
    @Test func theRingIsCompressedOnceForEveryAttachingBrowser() throws {
        let h = try RelayHarness { $0.pod.maxBrowsers = 100 }
        let runner = try h.runner("ring")
        for i in 0..<200 { let f = Self.text(i); runner.send(f[0], Array(f.dropFirst())) }
        #expect(h.server.compression.compressions.load(ordering: .relaxed) == 0, "nobody compressing yet")
        let first = try compressingBrowser(h, "ring")
        var reader = Reader()
        reader.read(first)
        let afterFirst = h.server.compression.compressions.load(ordering: .relaxed)
        #expect(afterFirst > 0)
        #expect(reader.messages.filter { $0.first == Self.output }.count == 200, "the ring replayed (instant attach)")
        for _ in 0..<9 { _ = try compressingBrowser(h, "ring") }
        #expect(h.server.compression.compressions.load(ordering: .relaxed) == afterFirst,
                "nine more attaches, no more compressions")
    }

    /// Found by the benchmark: kept encodings pinned whole arena chunks
    /// beyond their budget. What is kept is bounded by what it keeps
    /// allocated, and notices are not kept at all.
    @Test func keptEncodingsAreBoundedByWhatTheyPin() {
        let cache = DeflateEncodingCache(minimumSize: 16, counters: CompressionCounters(), keptBytes: 512 << 10)
        var arena = FrameArena()
        var slabs: [SlabSlice] = []
        for i in 0..<400 {
            // A pod each time: a frame in a 64 KiB chunk of its own (new arena).
            var own = FrameArena()
            let f = Array("pod \(i): some terminal output that compresses\r\n".utf8)
            let frame = f.withUnsafeBytes { own.frame(payload: $0) }
            _ = cache.encoding(of: frame, keep: true)
            frame.release()
            #expect(cache.keptTotal <= cache.keptBytes + (64 << 10) + 4096)
        }
        let kept = cache.keptCount
        let notice = Array("presence".utf8).withUnsafeBytes { arena.frame(payload: $0) }
        _ = cache.encoding(of: notice, keep: false)
        #expect(cache.keptCount == kept, "a notice is not kept")
        notice.release()
        _ = slabs
    }

    /// A deflate bomb: a small compressed message that inflates past the
    /// limit is closed with 1009 before it is inflated past it.
    @Test func aBombIsClosedWith1009() throws {
        let h = try RelayHarness { $0.maxMessageSize = 64 << 10 }
        _ = try h.runner("b")
        let browser = try compressingBrowser(h, "b")
        #expect(browser.status == 101)
        let bomb = PerMessageDeflateCodec().compress([RelayFrameType.input.rawValue] + [UInt8](repeating: 0, count: 4 << 20))
        var frame = Peer.clientFrame(.binary, bomb)
        frame[0] |= 0x40
        browser.transport.peerWrite(frame)
        h.run()
        #expect(bomb.count < 8192)
        #expect(browser.closeCode == .some(1009))
    }

    /// A compressed message from a browser reaches an uncompressed runner inflated.
    @Test func compressedInputReachesTheRunnerInflated() throws {
        let h = try RelayHarness()
        let runner = try h.runner("i")
        let browser = try compressingBrowser(h, "i")
        #expect(browser.status == 101)
        let typed = [RelayFrameType.input.rawValue] + Array(String(repeating: "make -j8 && ./run-tests\r", count: 10).utf8)
        var frame = Peer.clientFrame(.binary, PerMessageDeflateCodec().compress(typed))
        frame[0] |= 0x40
        browser.transport.peerWrite(frame)
        h.run()
        #expect(runner.takeFrames().filter { $0.first == RelayFrameType.input.rawValue } == [typed])
    }
}

extension CompressionTests {
    /// The same over HTTP/2 (RFC 8441 carries the extension headers as they are).
    @Test func aWebSocketOverHTTP2NegotiatesCompressionToo() throws {
        let h = try RelayHarness()
        let runner = try h.runner("h2z")
        let peer = try H2Peer(harness: h)
        let b = peer.webSocket("/browser/relay?token=\(RelayHarness.token(pod: "h2z", runner: false))",
                               headers: [HTTP2Header("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")])
        #expect(peer.streams[b]?.headers.first?.value("sec-websocket-extensions")
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        let frames = (0..<30).map(Self.text)
        for f in frames { runner.send(f[0], Array(f.dropFirst())) }
        peer.pump()
        var data = peer.streams[b]!.data
        var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 1 << 20, compressed: true))
        let codec = PerMessageDeflateCodec()
        var got: [[UInt8]] = []
        data.withUnsafeMutableBytes { buf in _ = decoder.feed(buf, inflater: codec) { if case .message(_, let p, _) = $0 { got.append(Array(p)) } } }
        #expect(got.filter { $0.first == Self.output } == frames)
        #expect(h.server.compression.compressions.load(ordering: .relaxed) == 30)
        let plain = peer.webSocket("/browser/relay?token=\(RelayHarness.token(pod: "h2z", runner: false))")
        #expect(peer.streams[plain]?.headers.first?.value("sec-websocket-extensions") == nil)
    }
}

extension GRPCStream {
    /// Header size and payload length of the server frame at `offset` of `bytes` (tests).
    static func serverFrameSafe(_ bytes: [UInt8], at offset: Int) -> (Int, Int) {
        bytes.withUnsafeBytes { serverFrame($0.baseAddress! + offset) }
    }
}
