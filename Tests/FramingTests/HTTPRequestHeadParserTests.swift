import Testing
@testable import Framing

@Suite struct HTTPRequestHeadParserTests {
    static let upgrade = "GET /relay/ws?pod_key=abc%20d&token=x+y HTTP/1.1\r\n"
        + "Host: relay.example\r\n"
        + "Upgrade: websocket\r\n"
        + "Connection: keep-alive, Upgrade\r\n"
        + "Sec-WebSocket-Key:   dGhlIHNhbXBsZSBub25jZQ==  \r\n"
        + "Sec-WebSocket-Version: 13\r\n"
        + "\r\n"

    @Test func parsesCompleteHead() throws {
        let (head, length) = try #require(completeHead(Self.upgrade))
        #expect(length == Self.upgrade.utf8.count)
        #expect(head.method == "GET")
        #expect(head.target == "/relay/ws?pod_key=abc%20d&token=x+y")
        #expect(head.path == "/relay/ws")
        #expect(head.query.map { $0.name } == ["pod_key", "token"])
        #expect(head.queryValue("pod_key") == "abc d")
        #expect(head.queryValue("token") == "x y")
        #expect(head.queryValue("missing") == nil)
        #expect(head.versionMinor == 1)
        #expect(head.headers.count == 5)
        #expect(head.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(head.headers.fields[0].name == "Host")
    }

    @Test func leavesBytesAfterHeadAlone() throws {
        let bytes = Array((Self.upgrade + "\u{81}\u{05}hello").utf8)
        guard case .complete(_, let length) = parseHead(bytes) else { Issue.record("not complete"); return }
        #expect(length == Self.upgrade.utf8.count)
    }

    @Test func needsMoreForEveryStrictPrefix() {
        let bytes = Array(Self.upgrade.utf8)
        for n in 0..<bytes.count {
            #expect(isNeedMore(parseHead(Array(bytes[0..<n]))), "prefix \(n)")
        }
    }

    @Test func http10() throws {
        let (head, length) = try #require(completeHead("GET / HTTP/1.0\r\n\r\n"))
        #expect(head.versionMinor == 0)
        #expect(head.path == "/")
        #expect(head.headers.count == 0)
        #expect(length == 18)
    }

    @Test func otherVersionsAre505() {
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.1"] {
            #expect(failure(parseHead("GET / \(v)\r\n\r\n"))?.status == 505, "\(v)")
        }
    }

    @Test func malformedRequestLinesAre400() {
        let lines = [
            "GET  / HTTP/1.1\r\n",       // empty target
            " GET / HTTP/1.1\r\n",       // leading space
            "\r\nGET / HTTP/1.1\r\n",    // leading empty line
            "G(T / HTTP/1.1\r\n",        // non-token method
            "GET / HTTP/1.1 \r\n",       // trailing space
            "GET / http/1.1\r\n",        // lowercase protocol
            "GET / HTTP/1.10\r\n",
            "GET / HTTP/11\r\n",
            "GET / HTTP/1.\r\n",
            "GET /\u{7F} HTTP/1.1\r\n",  // DEL in target
            "GET / HTTP/1.1\rX",         // CR not followed by LF
        ]
        for line in lines {
            #expect(failure(parseHead(line + "\r\n"))?.status == 400, "\(line.debugDescription)")
        }
    }

    @Test func malformedVersionIsRefusedBeforeLineEnds() {
        #expect(failure(parseHead("GET / HTTX"))?.status == 400)
        #expect(isNeedMore(parseHead("GET / HTT")))
    }

    @Test func bareLFIsRefused() {
        #expect(failure(parseHead("GET / HTTP/1.1\n\n")) == HTTPHeadError(status: 400, reason: "line endings must be CRLF"))
        #expect(failure(parseHead("GET / HTTP/1.1\r\nHost: a\n\r\n"))?.status == 400)
        #expect(failure(parseHead("GET / HTTP/1.1\r\nHost: a\r\n\n"))?.status == 400)
    }

    @Test func targetTooLongIsDetectedEarly() {
        var limits = HTTPRequestHeadLimits()
        limits.maxTargetLength = 10
        #expect(isNeedMore(parseHead("GET /123456789", limits: limits)))  // exactly 10
        #expect(failure(parseHead("GET /1234567890", limits: limits))?.status == 414)  // 11, line incomplete
        #expect(failure(parseHead("GET /1234567890 HTTP/1.1\r\n\r\n", limits: limits))?.status == 414)
        if case .complete = parseHead("GET /123456789 HTTP/1.1\r\n\r\n", limits: limits) {} else {
            Issue.record("10-byte target should be accepted")
        }
    }

    @Test func headTooLargeIs431() {
        var limits = HTTPRequestHeadLimits()
        limits.maxHeadSize = 64
        let head = "GET / HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 60) + "\r\n\r\n"
        #expect(failure(parseHead(head, limits: limits)) == HTTPHeadError(status: 431, reason: "request head too large"))
        // Below the limit it is just incomplete.
        #expect(isNeedMore(parseHead(Array(head.utf8.prefix(63)), limits: limits)))
        // A head ending exactly at the limit is accepted.
        let exact = "GET / HTTP/1.1\r\nX: " + String(repeating: "b", count: 64 - 23) + "\r\n\r\n"
        #expect(exact.utf8.count == 64)
        if case .complete(_, let length) = parseHead(exact, limits: limits) { #expect(length == 64) } else {
            Issue.record("exact-size head should be accepted")
        }
    }

    @Test func tooManyHeadersIs431() {
        var limits = HTTPRequestHeadLimits()
        limits.maxHeaders = 3
        let three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        let four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"
        if case .complete(let h, _) = parseHead(three, limits: limits) { #expect(h.headers.count == 3) } else {
            Issue.record("3 headers should be accepted")
        }
        #expect(failure(parseHead(four, limits: limits))?.status == 431)
    }

    @Test func headerSyntaxErrors() {
        let cases: [(String, String)] = [
            ("Host : a\r\n", "whitespace before header colon"),
            ("Host\t: a\r\n", "whitespace before header colon"),
            (" folded\r\n", "obsolete header line folding"),
            ("Host: a\r\n continued\r\n", "obsolete header line folding"),
            (": empty\r\n", "malformed header name"),
            ("NoColon\r\n", "malformed header name"),
            ("No colon\r\n", "whitespace before header colon"),
            ("Bad[name]: x\r\n", "malformed header name"),
            ("X: a\u{0}b\r\n", "invalid character in header value"),
            ("X: a\u{1}b\r\n", "invalid character in header value"),
            ("X: a\u{7F}b\r\n", "invalid character in header value"),
            ("X: a\rb\r\n", "line endings must be CRLF"),
        ]
        for (line, reason) in cases {
            let result = parseHead("GET / HTTP/1.1\r\n" + line + "\r\n")
            #expect(failure(result) == HTTPHeadError(status: 400, reason: reason), "\(line.debugDescription)")
        }
    }

    @Test func headerErrorsAreReportedBeforeTheHeadEnds() {
        #expect(failure(parseHead("GET / HTTP/1.1\r\nHost : a\r\n"))?.status == 400)
    }

    @Test func headerValuesAreTrimmedAndMayBeEmpty() throws {
        let (head, _) = try #require(completeHead("GET / HTTP/1.1\r\nA:\t x \t\r\nB:\r\nC: a  b\r\n\r\n"))
        #expect(head.headers["A"] == "x")
        #expect(head.headers["B"] == "")
        #expect(head.headers["C"] == "a  b")
    }

    @Test func obsTextIsKept() throws {
        let (head, _) = try #require(completeHead("GET / HTTP/1.1\r\nX: caf\u{E9}\r\n\r\n"))
        #expect(head.headers["x"] == "café")
    }

    @Test func percentDecodingOfPath() throws {
        let (head, _) = try #require(completeHead("GET /a%2Fb/%E2%82%AC+x HTTP/1.1\r\n\r\n"))
        #expect(head.path == "/a/b/€+x")  // '+' is literal in paths
        for bad in ["/%", "/%2", "/%zz", "/%00", "/%C3%28", "/a#frag"] {
            #expect(failure(parseHead("GET \(bad) HTTP/1.1\r\n\r\n")) == HTTPHeadError(status: 400, reason: "malformed request target"), "\(bad)")
        }
    }

    @Test func queryParsing() throws {
        let (head, _) = try #require(completeHead("GET /p?a=1&&b&c=x%3Dy=z&a=2&e= HTTP/1.1\r\n\r\n"))
        #expect(head.query.map { "\($0.name)=\($0.value)" } == ["a=1", "b=", "c=x=y=z", "a=2", "e="])
        #expect(head.queryValue("a") == "1")
        #expect(failure(parseHead("GET /p?a=%G1 HTTP/1.1\r\n\r\n"))?.status == 400)
    }

    @Test func otherTargetForms() throws {
        let (absolute, _) = try #require(completeHead("GET http://relay.example:8080/ws?x=1 HTTP/1.1\r\n\r\n"))
        #expect(absolute.path == "/ws")
        #expect(absolute.queryValue("x") == "1")
        let (bare, _) = try #require(completeHead("GET https://relay.example HTTP/1.1\r\n\r\n"))
        #expect(bare.path == "/")
        let (star, _) = try #require(completeHead("OPTIONS * HTTP/1.1\r\n\r\n"))
        #expect(star.path == "*")
        for bad in ["relative/path", "http:/x", "1http://h/", "http:///x"] {
            #expect(failure(parseHead("GET \(bad) HTTP/1.1\r\n\r\n"))?.status == 400, "\(bad)")
        }
    }

    @Test func neverReadsPastTheBuffer() {
        // Every prefix and every single-byte corruption of a valid head must
        // return without trapping.
        let bytes = Array(Self.upgrade.utf8)
        for n in 0...bytes.count { _ = parseHead(Array(bytes[0..<n])) }
        for i in bytes.indices {
            for b: UInt8 in [0, 0x0A, 0x0D, 0x20, 0x3A, 0xFF] {
                var copy = bytes
                copy[i] = b
                _ = parseHead(copy)
            }
        }
        var tiny = HTTPRequestHeadLimits()
        tiny.maxHeadSize = 0
        #expect(failure(parseHead("GET", limits: tiny))?.status == 431)
    }
}
