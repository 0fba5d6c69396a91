import Testing
@testable import Framing

@Suite struct HTTPResponseTests {
    @Test func head() {
        let bytes = HTTPResponse.head(status: 204, reason: "No Content", headers: [("X-A", "1"), ("X-B", "two")])
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 204 No Content\r\nX-A: 1\r\nX-B: two\r\n\r\n")
    }

    @Test func simpleWithClose() {
        let bytes = HTTPResponse.simple(status: 404, body: "not found\n")
        #expect(String(decoding: bytes, as: UTF8.self) ==
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n")
    }

    @Test func simpleKeepAliveWithExtras() {
        let bytes = HTTPResponse.simple(status: 200, body: "{\"status\":\"ok\"}", contentType: "application/json",
                                        extraHeaders: [("Cache-Control", "no-store")], close: false)
        #expect(String(decoding: bytes, as: UTF8.self) ==
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nCache-Control: no-store\r\n\r\n{\"status\":\"ok\"}")
    }

    @Test func contentLengthCountsBytesNotCharacters() {
        let text = String(decoding: HTTPResponse.simple(status: 200, body: "é€"), as: UTF8.self)
        #expect(text.contains("Content-Length: 5\r\n"))
    }

    @Test func reasonPhrases() {
        let expected: [Int: String] = [
            101: "Switching Protocols", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 414: "URI Too Long",
            426: "Upgrade Required", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable", 505: "HTTP Version Not Supported",
        ]
        for (code, phrase) in expected { #expect(HTTPResponse.reasonPhrase(code) == phrase) }
        #expect(HTTPResponse.reasonPhrase(299) == "Unknown")
    }

    @Test func responseSplittingIsImpossible() {
        let bytes = HTTPResponse.head(status: 200, reason: "OK\r\nX: y", headers: [("A\r\nB", "c\r\n\r\nevil\u{0}")])
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 200 OKX: y\r\nAB: cevil\r\n\r\n")
    }
}
