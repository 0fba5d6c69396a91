/// Server side of the WebSocket opening handshake (RFC 6455 §4.2.1, §4.2.2).
public enum WebSocketHandshake {
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// base64(SHA-1(key + GUID)), the Sec-WebSocket-Accept value.
    public static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + guid).utf8)))
    }

    /// Checks an upgrade request and returns the accept value to send.
    ///
    /// Errors: 405 not GET; 400 not HTTP/1.1, missing `Upgrade: websocket` or
    /// `Connection: upgrade` tokens, or a key that is absent, repeated or not
    /// base64 of 16 bytes; 426 version other than 13 (answer with
    /// `versionRequiredResponse()`, which names the supported version).
    /// The Host header is not checked; routing is the caller's business.
    public static func validate(_ head: HTTPRequestHead) -> Result<String, HTTPHeadError> {
        guard head.method == "GET" else { return .failure(.notGet) }
        guard head.versionMinor == 1 else { return .failure(.notHTTP11) }
        guard head.headers.containsToken("Upgrade", "websocket") else { return .failure(.noUpgradeToken) }
        guard head.headers.containsToken("Connection", "upgrade") else { return .failure(.noConnectionUpgrade) }
        let keys = head.headers.values("Sec-WebSocket-Key")
        guard keys.count == 1, let decoded = Base64.decode(keys[0]), decoded.count == 16 else {
            return .failure(.badKey)
        }
        guard head.headers.values("Sec-WebSocket-Version") == ["13"] else { return .failure(.unsupportedVersion) }
        return .success(acceptValue(forKey: keys[0]))
    }

    /// The 101 Switching Protocols response head (no body follows).
    public static func response(acceptValue: String, extraHeaders: [(String, String)] = []) -> [UInt8] {
        HTTPResponse.head(status: 101, reason: HTTPResponse.reasonPhrase(101), headers: [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", acceptValue),
        ] + extraHeaders)
    }

    /// 426 with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    public static func versionRequiredResponse() -> [UInt8] {
        HTTPResponse.simple(status: 426, body: "unsupported WebSocket version\n",
                            extraHeaders: [("Sec-WebSocket-Version", "13")])
    }
}

extension HTTPHeadError {
    static let notGet = HTTPHeadError(status: 405, reason: "WebSocket upgrade requires GET")
    static let notHTTP11 = HTTPHeadError(status: 400, reason: "WebSocket upgrade requires HTTP/1.1")
    static let noUpgradeToken = HTTPHeadError(status: 400, reason: "missing Upgrade: websocket")
    static let noConnectionUpgrade = HTTPHeadError(status: 400, reason: "missing Connection: upgrade")
    static let badKey = HTTPHeadError(status: 400, reason: "invalid Sec-WebSocket-Key")
    static let unsupportedVersion = HTTPHeadError(status: 426, reason: "Sec-WebSocket-Version must be 13")
}
