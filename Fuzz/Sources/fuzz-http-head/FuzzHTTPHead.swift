// libFuzzer target: HTTPRequestHeadParser.parse on the input and on every
// prefix of it, as a server calls it after each read.
//
// Besides crashes and AddressSanitizer reports (each prefix is copied into
// its own exact-size allocation, so a read past its end is caught), it traps
// when the results of successive prefixes are inconsistent:
//   - once a prefix fails, every longer prefix fails with the same error;
//   - once a prefix is complete, every longer prefix is complete with the same
//     head length and the same head (method, target, path, query, version,
//     header fields);
//   - a complete head's length is within the prefix;
//   - needMore is never answered once `maxHeadSize` bytes are there.
import Framing
import FuzzDriver

func fail(_ message: String) -> Never {
    fatalError("fuzz-http-head: invariant violated: \(message)")
}

/// What is compared between prefixes.
struct Summary: Equatable {
    enum Kind: Equatable { case needMore, failed(HTTPHeadError), complete(Int) }
    var kind: Kind
    var method = "", target = "", path = ""
    var query: [String] = []
    var versionMinor = -1
    var headers: [String] = []
}

func summarize(_ result: HTTPHeadParseResult) -> Summary {
    switch result {
    case .needMore:
        return Summary(kind: .needMore)
    case .failed(let error):
        return Summary(kind: .failed(error))
    case .complete(let head, let headLength):
        return Summary(
            kind: .complete(headLength), method: head.method, target: head.target, path: head.path,
            query: head.query.map { "\($0.name)=\($0.value)" }, versionMinor: head.versionMinor,
            headers: head.headers.fields.map { "\($0.name): \($0.value)" })
    }
}

func parse(_ data: UnsafePointer<UInt8>, _ count: Int, _ limits: HTTPRequestHeadLimits) -> Summary {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
    defer { copy.deallocate() }
    if count > 0 { copy.copyMemory(from: UnsafeRawBufferPointer(start: data, count: count)) }
    return summarize(HTTPRequestHeadParser.parse(UnsafeRawBufferPointer(copy), limits: limits))
}

func check(_ data: UnsafePointer<UInt8>, _ size: Int, _ limits: HTTPRequestHeadLimits) {
    var settled: (length: Int, summary: Summary)? = nil
    for length in 0...size {
        let s = parse(data, length, limits)
        if case .complete(let headLength) = s.kind, headLength > length || headLength <= 0 {
            fail("head length \(headLength) for a \(length)-byte prefix")
        }
        if s.kind == .needMore && length >= limits.maxHeadSize {
            fail("needMore with \(length) bytes, maxHeadSize \(limits.maxHeadSize)")
        }
        if let (earlier, first) = settled {
            if s != first { fail("prefix of \(earlier) bytes gave \(first), prefix of \(length) bytes gave \(s)") }
        } else if s.kind != .needMore {
            settled = (length, s)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // Default limits, and small ones so that every limit is within reach.
    check(data, size, HTTPRequestHeadLimits())
    var small = HTTPRequestHeadLimits()
    small.maxHeadSize = 200
    small.maxHeaders = 3
    small.maxTargetLength = 24
    check(data, min(size, 256), small)
    return 0
}

/// main(), as SwiftPM links it: libFuzzer's driver on `fuzz`.
@_cdecl("fuzz_http_head_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    relay_fuzz_main(argc, argv) { data, size in
        if let data { return fuzz(data, size) }
        var empty: UInt8 = 0
        return withUnsafePointer(to: &empty) { fuzz($0, 0) }
    }
}
