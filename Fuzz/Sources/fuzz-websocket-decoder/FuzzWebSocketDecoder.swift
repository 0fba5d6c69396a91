// libFuzzer target: WebSocketDecoder over arbitrary bytes, as a server
// (expectMasked true) and as a client (expectMasked false), fed whole and in
// random splits.
//
// Input layout: byte 0 picks options, bytes 1...8 seed the splits (SplitMix64),
// the rest is the byte stream. Shorter inputs are zero-padded for the options
// and seed, with an empty stream.
//   byte 0 bit 0:   small maxMessageSize (byte 0 >> 1, 0...127) instead of 4 MiB
//
// Besides crashes and AddressSanitizer reports, it fails (traps, so that
// libFuzzer keeps the input) when:
//   - a split feed yields other events, or another error, than the whole feed;
//   - a feed after a failure returns something other than the first error;
//   - a payload said to be `.input(frameStart:payloadOffset:)` is not where
//     those offsets say in the buffer that was fed.
// Every feed gets its own exact-size allocation, so AddressSanitizer sees a
// read past the end of a piece.
import Framing
import FuzzDriver

/// A decoded event copied out of the callback.
enum Recorded: Equatable {
    case message(UInt8, [UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(UInt16?, [UInt8])
}

struct Outcome: Equatable {
    var events: [Recorded] = []
    var error: WebSocketDecodeError? = nil
}

struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Sorted cut offsets in 1..<count: a few large pieces or many tiny ones.
func randomCuts(count: Int, _ random: inout SplitMix64) -> [Int] {
    guard count > 1 else { return [] }
    switch random.next(below: 3) {
    case 0:
        let pieces = random.next(below: min(count, 16))
        return Set((0..<pieces).map { _ in 1 + random.next(below: count - 1) }).sorted()
    case 1:
        var cuts: [Int] = []
        var position = 0
        while true {
            position += 1 + random.next(below: 16)
            guard position < count else { return cuts }
            cuts.append(position)
        }
    default:
        return count <= 4096 ? Array(1..<count) : [count / 2]   // one byte at a time
    }
}

func fail(_ message: String) -> Never {
    fatalError("fuzz-websocket-decoder: invariant violated: \(message)")
}

/// Feeds `stream` cut at `cuts`, each piece copied into its own allocation.
func decode(_ stream: UnsafeBufferPointer<UInt8>, cuts: [Int], configuration: WebSocketDecoderConfiguration) -> Outcome {
    var decoder = WebSocketDecoder(configuration: configuration)
    var outcome = Outcome()
    var start = 0
    for end in cuts + [stream.count] {
        let count = end - start
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { piece.deallocate() }
        if count > 0 { piece.copyMemory(from: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: stream[start..<end]))) }
        start = end
        let error = decoder.feed(piece) { event in
            switch event {
            case .message(let opcode, let payload, let location):
                if case .input(let frameStart, let payloadOffset) = location {
                    guard frameStart >= 0, frameStart < payloadOffset, payloadOffset + payload.count <= count,
                          payload.baseAddress == nil || payload.baseAddress == UnsafeRawPointer(piece.baseAddress! + payloadOffset)
                    else { fail("payload location \(location) (\(payload.count) bytes) does not match a \(count)-byte feed") }
                }
                outcome.events.append(.message(opcode.rawValue, Array(payload)))
            case .ping(let payload): outcome.events.append(.ping(Array(payload)))
            case .pong(let payload): outcome.events.append(.pong(Array(payload)))
            case .close(let code, let reason): outcome.events.append(.close(code, Array(reason)))
            }
        }
        if let first = outcome.error {
            if error != first { fail("error changed after failure: \(first) then \(String(describing: error))") }
        } else {
            outcome.error = error
        }
    }
    // One more (empty) feed after a failure must repeat the error.
    if let first = outcome.error {
        let again = decoder.feed(UnsafeMutableRawBufferPointer(start: nil, count: 0)) { _ in
            fail("event after failure")
        }
        if again != first { fail("empty feed after failure returned \(String(describing: again)), not \(first)") }
    }
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var control = [UInt8](repeating: 0, count: 9)
    for i in 0..<min(size, 9) { control[i] = data[i] }
    let stream = UnsafeBufferPointer(start: data + min(size, 9), count: max(size - 9, 0))
    let maxMessageSize = control[0] & 1 == 1 ? Int(control[0] >> 1) : 4 << 20
    var seed: UInt64 = 0
    for i in 1...8 { seed = seed << 8 | UInt64(control[i]) }
    var random = SplitMix64(seed: seed)

    for expectMasked in [true, false] {
        let configuration = WebSocketDecoderConfiguration(expectMasked: expectMasked, maxMessageSize: maxMessageSize)
        let whole = decode(stream, cuts: [], configuration: configuration)
        for _ in 0..<2 {
            let cuts = randomCuts(count: stream.count, &random)
            let split = decode(stream, cuts: cuts, configuration: configuration)
            if split != whole {
                fail("""
                    expectMasked \(expectMasked), maxMessageSize \(maxMessageSize): split at \(cuts.prefix(32)) gave \
                    \(split.events.count) events, error \(String(describing: split.error)); whole gave \
                    \(whole.events.count) events, error \(String(describing: whole.error))
                    """)
            }
        }
    }
    return 0
}

/// main(), as SwiftPM links it: libFuzzer's driver on `fuzz`.
@_cdecl("fuzz_websocket_decoder_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    relay_fuzz_main(argc, argv) { data, size in
        if let data { return fuzz(data, size) }
        var empty: UInt8 = 0
        return withUnsafePointer(to: &empty) { fuzz($0, 0) }
    }
}
