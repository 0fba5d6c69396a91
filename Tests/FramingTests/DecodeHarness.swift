import Framing

/// A decoded event copied out of the decoder's callback.
enum RecordedEvent: Equatable, CustomStringConvertible {
    case message(WebSocketOpcode, [UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(UInt16?, [UInt8])

    init(_ event: WebSocketEvent) {
        switch event {
        case .message(let opcode, let payload, _): self = .message(opcode, Array(payload))
        case .ping(let payload): self = .ping(Array(payload))
        case .pong(let payload): self = .pong(Array(payload))
        case .close(let code, let reason): self = .close(code, Array(reason))
        }
    }

    static func text(_ string: String) -> RecordedEvent { .message(.text, Array(string.utf8)) }

    var description: String {
        switch self {
        case .message(let opcode, let payload): return "message(\(opcode), \(payload.count) bytes)"
        case .ping(let payload): return "ping(\(payload))"
        case .pong(let payload): return "pong(\(payload))"
        case .close(let code, let reason): return "close(\(String(describing: code)), \(reason))"
        }
    }
}

struct DecodeOutcome {
    var events: [RecordedEvent] = []
    var error: WebSocketDecodeError? = nil
    /// Largest `bufferedCapacity` observed after any feed.
    var peakBufferedCapacity = 0
    var finalBufferedCapacity = 0
    /// Whether a later feed returned something other than the first error.
    var errorChangedAfterFailure = false
}

/// Feeds `bytes` cut at `cuts` (sorted offsets), each piece in its own fresh
/// buffer as a socket read would deliver it.
func decode(
    _ bytes: [UInt8], cuts: [Int] = [], configuration: WebSocketDecoderConfiguration = .init()
) -> DecodeOutcome {
    var decoder = WebSocketDecoder(configuration: configuration)
    var outcome = DecodeOutcome()
    var start = 0
    for end in cuts + [bytes.count] {
        var piece = Array(bytes[start..<end])
        start = end
        let error = piece.withUnsafeMutableBytes { buffer in
            decoder.feed(buffer) { outcome.events.append(RecordedEvent($0)) }
        }
        if let first = outcome.error {
            if error != first { outcome.errorChangedAfterFailure = true }
        } else {
            outcome.error = error
        }
        outcome.peakBufferedCapacity = max(outcome.peakBufferedCapacity, decoder.bufferedCapacity)
    }
    outcome.finalBufferedCapacity = decoder.bufferedCapacity
    return outcome
}

/// Every offset: the input fed one byte at a time.
func everyByte(_ count: Int) -> [Int] { count > 1 ? Array(1..<count) : [] }

/// Random sorted cut points, mixing few large pieces and many tiny ones.
func randomCuts(count: Int, using generator: inout SplitMix64) -> [Int] {
    guard count > 1 else { return [] }
    if generator.next(below: 2) == 0 {
        let pieces = generator.next(below: min(count, 40))
        return Set((0..<pieces).map { _ in 1 + generator.next(below: count - 1) }).sorted()
    }
    var cuts: [Int] = []
    var position = 0
    while true {
        position += 1 + generator.next(below: 16)
        guard position < count else { return cuts }
        cuts.append(position)
    }
}
