/// A complete response to a plain request (admin routes, refusals, the
/// terminal page), independent of the HTTP version that carries it: HTTP/1.1
/// serializes it (`http1`), HTTP/2 sends it as HEADERS + DATA.
public struct HTTPReply: Sendable {
    public var status: Int
    /// Beyond Content-Type and Content-Length (which come from the body).
    public var headers: [(String, String)]
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, body: [UInt8], contentType: String = "text/plain; charset=utf-8", headers: [(String, String)] = []) {
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers
    }

    public static func text(_ status: Int, _ body: String, contentType: String = "text/plain; charset=utf-8") -> HTTPReply {
        HTTPReply(status: status, body: Array(body.utf8), contentType: contentType)
    }

    /// HTTP/1.1 bytes, with `Connection: close` (the relay closes after every plain response).
    public var http1: [UInt8] {
        var all: [(String, String)] = [("Content-Type", contentType), ("Content-Length", String(body.count))]
        all += headers
        all.append(("Connection", "close"))
        return HTTPResponse.head(status: status, reason: HTTPResponse.reasonPhrase(status), headers: all) + body
    }
}
