import Testing
@testable import Framing

@Suite struct WebSocketHandshakeTests {
    func head(method: String = "GET", version: String = "HTTP/1.1", headers: [String]) -> HTTPRequestHead? {
        let text = "\(method) /ws \(version)\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n"
        return completeHead(text)?.0
    }

    static let good = [
        "Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    ]

    func replacing(_ prefix: String, with line: String?) -> [String] {
        Self.good.compactMap { $0.hasPrefix(prefix) ? line : $0 }
    }

    @Test func rfcExampleAcceptValue() {
        // RFC 6455 §1.3.
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func validRequest() throws {
        let h = try #require(head(headers: Self.good))
        #expect(WebSocketHandshake.validate(h) == .success("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    @Test func tokensAreCaseInsensitiveAndListed() throws {
        let h = try #require(head(headers: [
            "Upgrade: WebSocket", "Connection: keep-alive, UPGRADE",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        ]))
        #expect(WebSocketHandshake.validate(h) == .success("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    func status(_ h: HTTPRequestHead?) -> Int? {
        guard let h, case .failure(let e) = WebSocketHandshake.validate(h) else { return nil }
        return e.status
    }

    @Test func refusals() {
        #expect(status(head(method: "POST", headers: Self.good)) == 405)
        #expect(status(head(version: "HTTP/1.0", headers: Self.good)) == 400)
        #expect(status(head(headers: replacing("Upgrade", with: nil))) == 400)
        #expect(status(head(headers: replacing("Upgrade", with: "Upgrade: h2c"))) == 400)
        #expect(status(head(headers: replacing("Connection", with: "Connection: keep-alive"))) == 400)
        #expect(status(head(headers: replacing("Sec-WebSocket-Key", with: nil))) == 400)
        // Base64 of 15 and 17 bytes, and not base64 at all.
        #expect(status(head(headers: replacing("Sec-WebSocket-Key", with: "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"))) == 400)
        #expect(status(head(headers: replacing("Sec-WebSocket-Key", with: "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="))) == 400)
        #expect(status(head(headers: replacing("Sec-WebSocket-Key", with: "Sec-WebSocket-Key: not-base64"))) == 400)
        #expect(status(head(headers: Self.good + ["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="])) == 400)
        #expect(status(head(headers: replacing("Sec-WebSocket-Version", with: "Sec-WebSocket-Version: 8"))) == 426)
        #expect(status(head(headers: replacing("Sec-WebSocket-Version", with: nil))) == 426)
    }

    @Test func switchingProtocolsResponse() {
        let bytes = WebSocketHandshake.response(acceptValue: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                                                extraHeaders: [("Sec-WebSocket-Protocol", "relay")])
        #expect(String(decoding: bytes, as: UTF8.self) ==
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: relay\r\n\r\n")
    }

    @Test func versionRequiredResponse() {
        #expect(String(decoding: WebSocketHandshake.versionRequiredResponse(), as: UTF8.self) ==
            "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\n"
            + "Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\nunsupported WebSocket version\n")
    }
}
