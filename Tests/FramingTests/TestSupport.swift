@testable import Framing

func parseHead(_ text: String, limits: HTTPRequestHeadLimits = .init()) -> HTTPHeadParseResult {
    parseHead(Array(text.utf8), limits: limits)
}

func parseHead(_ bytes: [UInt8], limits: HTTPRequestHeadLimits = .init()) -> HTTPHeadParseResult {
    bytes.withUnsafeBytes { HTTPRequestHeadParser.parse($0, limits: limits) }
}

/// The head and its length, or nil when the parse did not complete.
func completeHead(_ text: String) -> (HTTPRequestHead, Int)? {
    if case .complete(let head, let length) = parseHead(text) { return (head, length) }
    return nil
}

func failure(_ result: HTTPHeadParseResult) -> HTTPHeadError? {
    if case .failed(let error) = result { return error }
    return nil
}

func isNeedMore(_ result: HTTPHeadParseResult) -> Bool {
    if case .needMore = result { return true }
    return false
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
}
