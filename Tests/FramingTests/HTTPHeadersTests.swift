import Testing
@testable import Framing

@Suite struct HTTPHeadersTests {
    func sample() -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "Connection", value: "keep-alive")
        h.add(name: "connection", value: " Upgrade ,\tfoo")
        h.add(name: "X-Empty", value: "")
        return h
    }

    @Test func lookupIsCaseInsensitiveAndOrdered() {
        let h = sample()
        #expect(h.count == 3)
        #expect(h["CONNECTION"] == "keep-alive")
        #expect(h.values("Connection") == ["keep-alive", " Upgrade ,\tfoo"])
        #expect(h["X-Empty"] == "")
        #expect(h["Missing"] == nil)
        #expect(h.values("Missing").isEmpty)
    }

    @Test func tokenListsSpanAllInstances() {
        let h = sample()
        #expect(h.containsToken("connection", "upgrade"))
        #expect(h.containsToken("Connection", "FOO"))
        #expect(h.containsToken("Connection", "Keep-Alive"))
        #expect(!h.containsToken("Connection", "up"))
        #expect(!h.containsToken("Connection", "upgrade,"))
        #expect(!h.containsToken("X-Empty", ""))
    }

    @Test func asciiFoldingOnly() {
        var h = HTTPHeaders()
        h.add(name: "K", value: "x")
        // U+212A KELVIN SIGN lowercases to "k" in Unicode but not in ASCII.
        #expect(h["\u{212A}"] == nil)
    }
}
