// libFuzzer target: GRPCMessageReader (gRPC length-prefixed messages) with a
// small limit, fed in chunks whose sizes come from the input, and
// GRPCFrameCodec.data(of:) (the `relay.v1.Frame` data field) on every message.
//
// Input layout: byte 0 is the reader's limit (0...254; 255: 1 MiB), byte 1's
// low 4 bits say how many chunk sizes follow (0...15 bytes, used in turn; no
// sizes: the whole stream at once), the rest is the stream. A chunk size of 0
// feeds an empty buffer. Shorter inputs are zero-padded.
//
// Besides crashes and AddressSanitizer reports (every chunk and every message
// handed to data(of:) is copied into its own exact-size allocation), it traps
// when:
//   - the reader, fed in chunks or whole, disagrees with a model written from
//     its documentation (messages, the first failure: .compressed for a flag
//     other than 0, .tooLarge(n) from the prefix; isIdle at the end), or the
//     chunked feed differs from the whole one;
//   - a message is over the limit, or a message handed out in place is not
//     inside the chunk that was fed;
//   - data(of:) disagrees with a model protobuf walker (the last field 1 of
//     wire type 2, unknown fields skipped, .truncated, .badWireType), or
//     returns a buffer outside the message;
//   - round trip: GRPCFrameCodec.message(data) is not a well-formed gRPC
//     message whose reader output decodes back to the same data, or
//     writePrefix writes other than prefixSize(payloadLength:) bytes.
import Framing
import FuzzDriver

func fail(_ message: String) -> Never {
    fatalError("fuzz-grpc: invariant violated: \(message)")
}

struct Outcome: Equatable {
    var messages: [[UInt8]] = []
    var failure: GRPCMessageReader.Failure?
    var idle = true
}

/// The reader's documented behaviour on a whole stream.
func model(_ stream: [UInt8], limit: Int) -> Outcome {
    var out = Outcome()
    var i = 0
    while i < stream.count {
        guard stream.count - i >= 5 else { out.idle = false; break }
        let n = Int(stream[i + 1]) << 24 | Int(stream[i + 2]) << 16 | Int(stream[i + 3]) << 8 | Int(stream[i + 4])
        if stream[i] != 0 { out.failure = .compressed; break }
        if n > limit { out.failure = .tooLarge(n); break }
        guard stream.count - i - 5 >= n else { out.idle = false; break }
        out.messages.append(Array(stream[(i + 5)..<(i + 5 + n)]))
        i += 5 + n
    }
    return out
}

/// Feeds `stream` in chunks of `sizes` (in turn); stops at the first failure.
func read(_ stream: [UInt8], sizes: [Int], limit: Int) -> Outcome {
    var reader = GRPCMessageReader(maxMessageSize: limit)
    var out = Outcome()
    var start = 0
    var turn = 0
    var emptyRun = 0
    while start < stream.count || (start == 0 && stream.isEmpty && turn == 0) {
        var size = sizes.isEmpty ? stream.count - start : sizes[turn % sizes.count]
        turn += 1
        if size == 0 {
            emptyRun += 1
            if emptyRun > sizes.count { size = 1 }         // every size 0: one byte at a time
        } else {
            emptyRun = 0
        }
        let end = min(stream.count, start + size)
        let count = end - start
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { piece.deallocate() }
        stream.withUnsafeBytes { piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        start = end
        let chunk = UnsafeRawBufferPointer(piece)
        let failure = reader.receive(chunk) { message in
            if message.count > limit { fail("a \(message.count)-byte message over the \(limit)-byte limit") }
            if let base = message.baseAddress, let chunkBase = chunk.baseAddress,
               base >= chunkBase && base < chunkBase + max(count, 1) {
                if base + message.count > chunkBase + count { fail("an in-place message runs past its chunk") }
            }
            out.messages.append(Array(message))
        }
        if let failure {
            out.failure = failure
            return out
        }
        if stream.isEmpty { break }
    }
    out.idle = reader.isIdle
    return out
}

// MARK: data(of:)

enum ModelResult: Equatable {
    case found(offset: Int, count: Int)
    case failed(GRPCFrameCodec.DecodeError)
}

func varint(_ b: [UInt8], at start: Int) -> (UInt64, Int)? {
    var v: UInt64 = 0
    var i = start
    for k in 0..<10 {
        guard i < b.count else { return nil }
        v |= UInt64(b[i] & 0x7F) << UInt64(7 * k)
        i += 1
        if b[i - 1] < 0x80 { return (v, i) }
    }
    return nil
}

/// The codec's documented behaviour: the last field 1 of wire type 2.
func modelData(_ m: [UInt8]) -> ModelResult {
    var i = 0
    var found = (0, 0)
    while i < m.count {
        guard let (key, k) = varint(m, at: i) else { return .failed(.truncated) }
        i = k
        switch key & 7 {
        case 0:
            guard let (_, j) = varint(m, at: i) else { return .failed(.truncated) }
            i = j
        case 1:
            guard m.count - i >= 8 else { return .failed(.truncated) }
            i += 8
        case 5:
            guard m.count - i >= 4 else { return .failed(.truncated) }
            i += 4
        case 2:
            guard let (n, j) = varint(m, at: i), n <= UInt64(m.count - j) else { return .failed(.truncated) }
            if key >> 3 == 1 { found = (j, Int(n)) }
            i = j + Int(n)
        default:
            return .failed(.badWireType(UInt8(key & 7)))
        }
    }
    return .found(offset: found.0, count: found.1)
}

func checkData(_ message: [UInt8]) {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: message.count, alignment: 1)
    defer { copy.deallocate() }
    message.withUnsafeBytes { copy.copyMemory(from: $0) }
    let expected = modelData(message)
    switch GRPCFrameCodec.data(of: UnsafeRawBufferPointer(copy)) {
    case .failure(let error):
        if expected != .failed(error) { fail("data(of:) failed \(error), model \(expected) for \(message.prefix(64))") }
    case .success(let data):
        guard case .found(let offset, let count) = expected else { fail("data(of:) found \(data.count) bytes, model \(expected)") }
        if data.count != count { fail("data(of:) found \(data.count) bytes, model \(count)") }
        if count > 0 && data.baseAddress != UnsafeRawPointer(copy.baseAddress! + offset) {
            fail("data(of:) points elsewhere than offset \(offset)")
        }
        roundTrip(Array(data))
    }
}

/// message(data) is a gRPC message the reader hands back and data(of:) reads.
func roundTrip(_ data: [UInt8]) {
    let size = GRPCFrameCodec.prefixSize(payloadLength: data.count)
    let prefix = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 1)
    defer { prefix.deallocate() }
    let written = GRPCFrameCodec.writePrefix(payloadLength: data.count, to: prefix)
    if written != size || size > GRPCFrameCodec.maxPrefixSize { fail("writePrefix wrote \(written), prefixSize \(size)") }

    let whole = GRPCFrameCodec.message(data)
    if Array(UnsafeRawBufferPointer(start: prefix, count: size)) != Array(whole.prefix(size)) { fail("message and writePrefix differ") }
    var reader = GRPCMessageReader(maxMessageSize: whole.count)
    var got: [[UInt8]] = []
    let failure = whole.withUnsafeBytes { reader.receive($0) { got.append(Array($0)) } }
    guard failure == nil, got.count == 1, reader.isIdle else { fail("message(\(data.count) bytes) read back as \(got.count) messages, \(String(describing: failure))") }
    let again = got[0].withUnsafeBytes { buf in GRPCFrameCodec.data(of: buf).map { Array($0) } }
    if again != .success(data) { fail("round trip of \(data.count) bytes gave \(again)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let limit = input.first.map { $0 == 255 ? 1 << 20 : Int($0) } ?? 0
    let sizeCount = input.count > 1 ? Int(input[1] & 0x0F) : 0
    let sizesEnd = min(input.count, 2 + sizeCount)
    let sizes = input.count > 2 ? input[2..<sizesEnd].map(Int.init) : []
    let stream = Array(input[min(input.count, sizesEnd)...])

    let expected = model(stream, limit: limit)
    let whole = read(stream, sizes: [], limit: limit)
    let chunked = read(stream, sizes: sizes, limit: limit)
    let oneByOne = read(stream, sizes: [1], limit: limit)
    if whole != expected { fail("whole feed: \(whole.messages.count) messages, \(String(describing: whole.failure)), idle \(whole.idle); model: \(expected.messages.count), \(String(describing: expected.failure)), idle \(expected.idle)") }
    if chunked != expected { fail("chunks \(sizes): \(chunked.messages.count) messages, \(String(describing: chunked.failure)), idle \(chunked.idle); model: \(expected.messages.count), \(String(describing: expected.failure)), idle \(expected.idle)") }
    if oneByOne != expected { fail("byte by byte: \(oneByOne.messages.count) messages, \(String(describing: oneByOne.failure)), idle \(oneByOne.idle)") }

    for message in expected.messages { checkData(message) }
    // The stream itself as one Frame message, whatever the reader made of it.
    checkData(stream)
    return 0
}

/// main(), as SwiftPM links it: libFuzzer's driver on `fuzz`.
@_cdecl("fuzz_grpc_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    relay_fuzz_main(argc, argv) { data, size in
        if let data { return fuzz(data, size) }
        var empty: UInt8 = 0
        return withUnsafePointer(to: &empty) { fuzz($0, 0) }
    }
}
