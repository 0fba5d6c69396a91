/// Serializes HTTP/1.1 responses.
///
/// CR, LF and NUL are dropped from the reason, header names and values so a
/// caller-supplied string can never split the response.
public enum HTTPResponse {
    /// Status line and headers, ending with the blank line.
    public static func head(status: Int, reason: String, headers: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + headers.count * 32)
        out += Array("HTTP/1.1 \(status) ".utf8)
        appendSanitized(reason, to: &out)
        out += crlf
        for (name, value) in headers {
            appendSanitized(name, to: &out)
            out += [ASCII.colon, ASCII.space]
            appendSanitized(value, to: &out)
            out += crlf
        }
        out += crlf
        return out
    }

    /// A complete response with a body, Content-Type and Content-Length, and
    /// `Connection: close` when `close`.
    public static func simple(status: Int, body: String,
                              contentType: String = "text/plain; charset=utf-8",
                              extraHeaders: [(String, String)] = [],
                              close: Bool = true) -> [UInt8] {
        let bodyBytes = Array(body.utf8)
        var headers: [(String, String)] = [
            ("Content-Type", contentType),
            ("Content-Length", String(bodyBytes.count)),
        ]
        headers += extraHeaders
        if close { headers.append(("Connection", "close")) }
        return head(status: status, reason: reasonPhrase(status), headers: headers) + bodyBytes
    }

    /// The standard reason phrase (RFC 9110 §15) for the codes the relay uses.
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Unknown"
        }
    }

    private static let crlf: [UInt8] = [ASCII.cr, ASCII.lf]

    private static func appendSanitized(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 where b != ASCII.cr && b != ASCII.lf && b != 0 {
            out.append(b)
        }
    }
}
