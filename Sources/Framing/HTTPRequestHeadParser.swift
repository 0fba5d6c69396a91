/// Sans-I/O parser for an HTTP/1.x request head (RFC 9112 §2–§5).
///
/// The caller keeps the bytes received so far (at most `maxHeadSize` are
/// looked at) and calls `parse` on the whole prefix after each read. Bytes after
/// the head are never touched. Errors are reported as early as they can be
/// seen, so a bad request line is refused before its headers arrive.
///
/// Line endings must be CRLF: a bare LF or a CR not followed by LF is refused
/// with 400 (RFC 9112 §2.2 lets a server refuse them; being strict avoids
/// request-smuggling ambiguities with proxies that disagree). Leading empty
/// lines before the request line are refused too.
public enum HTTPRequestHeadParser {
    public static func parse(_ bytes: UnsafeRawBufferPointer,
                             limits: HTTPRequestHeadLimits = .init()) -> HTTPHeadParseResult {
        let window = min(bytes.count, max(limits.maxHeadSize, 0))
        let windowIsFull = bytes.count >= limits.maxHeadSize
        let scanner = Scanner(bytes: bytes, end: window)

        let line: RequestLine
        switch scanRequestLine(scanner, limits: limits) {
        case .failed(let error): return .failed(error)
        case .incomplete: return windowIsFull ? .failed(.headTooLarge) : .needMore
        case .done(let l): line = l
        }

        var fields: [HeaderField] = []
        var position = line.next
        while true {
            switch scanner.lineEnd(from: position) {
            case .incomplete:
                return windowIsFull ? .failed(.headTooLarge) : .needMore
            case .malformed:
                return .failed(.badLineEnding)
            case .found(let contentEnd, let next):
                if contentEnd == position {
                    return finish(scanner, line: line, fields: fields, headLength: next)
                }
                switch scanHeaderField(scanner, from: position, to: contentEnd) {
                case .failure(let error): return .failed(error)
                case .success(let field):
                    fields.append(field)
                    if fields.count > limits.maxHeaders { return .failed(.tooManyHeaders) }
                }
                position = next
            }
        }
    }

    // MARK: - Request line

    struct RequestLine {
        var method: Range<Int>
        var target: Range<Int>
        var versionMinor: Int
        var next: Int
    }

    enum RequestLineScan {
        case incomplete
        case failed(HTTPHeadError)
        case done(RequestLine)
    }

    static func scanRequestLine(_ s: Scanner, limits: HTTPRequestHeadLimits) -> RequestLineScan {
        // method SP
        var i = 0
        while i < s.end, ASCII.isTokenChar(s[i]) { i += 1 }
        guard i < s.end else { return .incomplete }
        guard i > 0, s[i] == ASCII.space else { return .failed(.badRequestLine) }
        let method = 0..<i
        i += 1

        // request-target SP — checked against the length limit as it arrives
        let targetStart = i
        while i < s.end, s[i] != ASCII.space {
            guard s[i] > 0x20 && s[i] < 0x7F else { return .failed(.badRequestLine) }
            if i - targetStart >= limits.maxTargetLength { return .failed(.targetTooLong) }
            i += 1
        }
        guard i < s.end else { return .incomplete }
        guard i > targetStart else { return .failed(.badRequestLine) }
        let target = targetStart..<i
        i += 1

        // HTTP-version CRLF
        let versionStart = i
        let pattern = Array("HTTP/".utf8)
        while i < s.end, s[i] != ASCII.cr, s[i] != ASCII.lf {
            let k = i - versionStart
            let ok: Bool
            switch k {
            case 0..<5: ok = s[i] == pattern[k]
            case 5, 7: ok = isDigit(s[i])
            case 6: ok = s[i] == UInt8(ascii: ".")
            default: ok = false
            }
            guard ok else { return .failed(.badRequestLine) }
            i += 1
        }
        switch s.lineEnd(from: i) {
        case .incomplete: return .incomplete
        case .malformed: return .failed(.badLineEnding)
        case .found(_, let next):
            guard i - versionStart == 8 else { return .failed(.badRequestLine) }
            let major = s[versionStart + 5] - UInt8(ascii: "0")
            let minor = s[versionStart + 7] - UInt8(ascii: "0")
            guard major == 1, minor <= 1 else { return .failed(.versionNotSupported) }
            return .done(RequestLine(method: method, target: target, versionMinor: Int(minor), next: next))
        }
    }

    // MARK: - Header fields

    struct HeaderField {
        var name: Range<Int>
        var value: Range<Int>
    }

    /// Parses `name ":" OWS value OWS` in `[start, end)` (line without CRLF).
    static func scanHeaderField(_ s: Scanner, from start: Int, to end: Int) -> Result<HeaderField, HTTPHeadError> {
        if ASCII.isOWS(s[start]) { return .failure(.obsFold) }
        var i = start
        while i < end, ASCII.isTokenChar(s[i]) { i += 1 }
        guard i < end, s[i] == ASCII.colon else {
            if i < end, ASCII.isOWS(s[i]) { return .failure(.spaceBeforeColon) }
            return .failure(.badHeaderName)
        }
        guard i > start else { return .failure(.badHeaderName) }
        let name = start..<i
        var valueStart = i + 1
        var valueEnd = end
        while valueStart < valueEnd, ASCII.isOWS(s[valueStart]) { valueStart += 1 }
        while valueEnd > valueStart, ASCII.isOWS(s[valueEnd - 1]) { valueEnd -= 1 }
        for j in valueStart..<valueEnd {
            let b = s[j]
            // field-vchar / SP / HTAB / obs-text; refuses NUL, CR and other CTLs.
            guard b == ASCII.tab || (b >= 0x20 && b != 0x7F) else { return .failure(.badHeaderValue) }
        }
        return .success(HeaderField(name: name, value: valueStart..<valueEnd))
    }

    // MARK: - Assembly

    static func finish(_ s: Scanner, line: RequestLine, fields: [HeaderField], headLength: Int) -> HTTPHeadParseResult {
        let target = s.string(line.target)
        guard let (path, query) = RequestTarget.split(target) else { return .failed(.badTarget) }
        var headers = HTTPHeaders()
        for f in fields {
            headers.add(name: s.string(f.name), value: s.string(f.value))
        }
        let head = HTTPRequestHead(method: s.string(line.method), target: target, path: path,
                                   query: query, versionMinor: line.versionMinor, headers: headers)
        return .complete(head, headLength: headLength)
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    // MARK: - Bounded byte access

    /// Read access to `bytes[0..<end]`; every index used is checked against `end`.
    struct Scanner {
        let bytes: UnsafeRawBufferPointer
        let end: Int

        subscript(_ i: Int) -> UInt8 { bytes[i] }

        enum LineEnd {
            case incomplete
            case malformed
            /// `contentEnd` is the CR's index, `next` the index after the LF.
            case found(contentEnd: Int, next: Int)
        }

        /// Finds the CRLF ending the line that starts at `start`.
        func lineEnd(from start: Int) -> LineEnd {
            var i = start
            while i < end {
                switch bytes[i] {
                case ASCII.lf:
                    return .malformed
                case ASCII.cr:
                    guard i + 1 < end else { return .incomplete }
                    return bytes[i + 1] == ASCII.lf ? .found(contentEnd: i, next: i + 2) : .malformed
                default:
                    i += 1
                }
            }
            return .incomplete
        }

        /// Header bytes as a String; obs-text that is not UTF-8 is replaced (U+FFFD).
        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
    }
}

extension HTTPHeadError {
    static let badRequestLine = HTTPHeadError(status: 400, reason: "malformed request line")
    static let badLineEnding = HTTPHeadError(status: 400, reason: "line endings must be CRLF")
    static let badTarget = HTTPHeadError(status: 400, reason: "malformed request target")
    static let obsFold = HTTPHeadError(status: 400, reason: "obsolete header line folding")
    static let spaceBeforeColon = HTTPHeadError(status: 400, reason: "whitespace before header colon")
    static let badHeaderName = HTTPHeadError(status: 400, reason: "malformed header name")
    static let badHeaderValue = HTTPHeadError(status: 400, reason: "invalid character in header value")
    static let targetTooLong = HTTPHeadError(status: 414, reason: "request target too long")
    static let headTooLarge = HTTPHeadError(status: 431, reason: "request head too large")
    static let tooManyHeaders = HTTPHeadError(status: 431, reason: "too many header fields")
    static let versionNotSupported = HTTPHeadError(status: 505, reason: "HTTP version not supported")
}
