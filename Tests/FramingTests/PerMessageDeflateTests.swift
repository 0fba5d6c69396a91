import Testing
@testable import Framing

/// permessage-deflate (RFC 7692): the offers the relay accepts or declines,
/// and messages through the codec, against the RFC's own examples.
@Suite struct PerMessageDeflateTests {
    static let response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    @Test(arguments: [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",           // Chromium's and Firefox's offer
        "permessage-deflate; client_max_window_bits=12",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "Permessage-Deflate; Client_Max_Window_Bits",
        "  permessage-deflate ;client_max_window_bits ",
    ])
    func acceptedOffers(_ offer: String) {
        #expect(PerMessageDeflateNegotiation.negotiate([offer])?.responseValue == Self.response)
    }

    /// An offered server_max_window_bits is accepted by answering it (§7.1.2.1).
    @Test(arguments: ["permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=\"15\""])
    func anOfferedServerWindowIsAnswered(_ offer: String) {
        #expect(PerMessageDeflateNegotiation.negotiate([offer])?.responseValue == Self.response + "; server_max_window_bits=15")
    }

    @Test(arguments: [
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=10",           // a window the compressor cannot promise
        "permessage-deflate; server_max_window_bits",              // the value is required
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=09",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; mystery",
        "",
    ])
    func declinedOffers(_ offer: String) {
        #expect(PerMessageDeflateNegotiation.negotiate([offer]) == nil)
    }

    @Test func theFirstAcceptableOfferAcrossHeadersWins() {
        let got = PerMessageDeflateNegotiation.negotiate([
            "permessage-deflate; server_max_window_bits=9, x-foo",
            "permessage-deflate; client_max_window_bits=10, permessage-deflate",
        ])
        #expect(got?.responseValue == Self.response)
        #expect(got?.clientMaxWindowBits == 10)
    }

    @Test func aQuotedCommaDoesNotSplitOffers() {
        #expect(PerMessageDeflateNegotiation.negotiate(["permessage-deflate; mystery=\"a,b\""]) == nil)
    }

    // MARK: Codec

    /// RFC 7692 §7.2.3.1: "Hello" in one message with no context takeover.
    @Test func inflatesTheRFCsHello() {
        let codec = PerMessageDeflateCodec()
        var got: [UInt8] = []
        let failure = [UInt8]([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]).withUnsafeBytes { (p: UnsafeRawBufferPointer) in
            codec.inflate(p, limit: 100) { got = Array($0) }
        }
        #expect(failure == nil)
        #expect(got == Array("Hello".utf8))
    }

    /// RFC 7692 §7.2.3.3: the same with a final (BFINAL=1) block, as the
    /// relay itself sends.
    @Test func inflatesTheRFCsHelloWithAFinalBlock() {
        let codec = PerMessageDeflateCodec()
        var got: [UInt8] = []
        let failure = [UInt8]([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00]).withUnsafeBytes { (p: UnsafeRawBufferPointer) in
            codec.inflate(p, limit: 100) { got = Array($0) }
        }
        #expect(failure == nil)
        #expect(got == Array("Hello".utf8))
    }

    /// RFC 7692 §7.2.3.2: a message of no bytes.
    @Test func inflatesAnEmptyMessage() {
        let codec = PerMessageDeflateCodec()
        var got: [UInt8]? = nil
        let failure = [UInt8]([0x00]).withUnsafeBytes { (p: UnsafeRawBufferPointer) in codec.inflate(p, limit: 100) { got = Array($0) } }
        #expect(failure == nil)
        #expect(got == [])
    }

    @Test(arguments: [0, 1, 5, 64, 1000, 100_000, 1 << 20])
    func roundTrips(_ size: Int) {
        let codec = PerMessageDeflateCodec()
        var rng = SplitMix64(seed: UInt64(size))
        let words = ["ls", "-la", "\u{1b}[32mok\u{1b}[0m", "build", "warning:", "/usr/lib", "\r\n", "  "]
        var text: [UInt8] = []
        while text.count < size { text += Array(words[Int(rng.next() % UInt64(words.count))].utf8) }
        text = Array(text.prefix(size))
        let compressed = codec.compress(text)
        // A sync flush whose 00 00 FF FF were removed, as zlib-based peers
        // expect (checked against Python's zlib in test_compression.py).
        if size >= 1000 { #expect(compressed.count * 3 < text.count, "terminal-like text compresses (\(compressed.count) of \(text.count))") }
        var got: [UInt8]? = nil
        let failure = compressed.withUnsafeBytes { codec.inflate($0, limit: 1 << 21) { got = Array($0) } }
        #expect(failure == nil)
        #expect(got?.count == text.count && got == text)
    }

    /// A deflate bomb: 1 MiB of zeros compresses to about a kilobyte, and
    /// inflating it with a 64 KiB limit stops there.
    @Test func aBombStopsAtTheLimit() {
        let codec = PerMessageDeflateCodec()
        let bomb = codec.compress([UInt8](repeating: 0, count: 1 << 20))
        #expect(bomb.count < 2048)
        var delivered = false
        let failure = bomb.withUnsafeBytes { codec.inflate($0, limit: 64 << 10) { _ in delivered = true } }
        #expect(failure == .tooLarge)
        #expect(!delivered)
    }

    @Test func exactlyTheLimitFitsAndOneMoreDoesNot() {
        let codec = PerMessageDeflateCodec()
        for (size, fits) in [(4096, true), (4097, false)] {
            let c = codec.compress([UInt8](repeating: 0x61, count: size))
            let failure = c.withUnsafeBytes { codec.inflate($0, limit: 4096) { _ in } }
            #expect((failure == nil) == fits, "size \(size)")
        }
    }

    @Test func garbageIsInvalid() {
        let codec = PerMessageDeflateCodec()
        // BTYPE 11 is reserved.
        let failure = [UInt8]([0xFF, 0xFF, 0xFF]).withUnsafeBytes { (p: UnsafeRawBufferPointer) in codec.inflate(p, limit: 100) { _ in } }
        #expect(failure == .invalid)
    }
}
