import Framing

/// A valid byte stream plus the events it must decode to and, for each
/// event, the stream offset at which its last frame ends.
struct StreamBuilder {
    private(set) var bytes: [UInt8] = []
    private(set) var expected: [(end: Int, event: RecordedEvent)] = []
    let masked: Bool
    private var keys: SplitMix64

    init(masked: Bool, seed: UInt64 = 1) {
        self.masked = masked
        keys = SplitMix64(seed: seed)
    }

    var events: [RecordedEvent] { expected.map(\.event) }

    /// Events whose frames lie wholly within the first `length` bytes.
    func events(completedWithin length: Int) -> [RecordedEvent] {
        expected.filter { $0.end <= length }.map(\.event)
    }

    mutating func frame(_ opcode: WebSocketOpcode, fin: Bool = true, _ payload: [UInt8], completes event: RecordedEvent? = nil) {
        let key: UInt32? = masked ? UInt32(truncatingIfNeeded: keys.next()) : nil
        bytes += TestFrame.make(opcode: opcode.rawValue, fin: fin, payload: payload, maskKey: key)
        if let event { expected.append((bytes.count, event)) }
    }

    mutating func message(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        frame(opcode, payload, completes: .message(opcode, payload))
    }

    mutating func ping(_ payload: [UInt8]) { frame(.ping, payload, completes: .ping(payload)) }
    mutating func pong(_ payload: [UInt8]) { frame(.pong, payload, completes: .pong(payload)) }

    /// A fragmented message; a ping follows fragment i for each i in `pingsAfter`.
    mutating func fragmented(_ opcode: WebSocketOpcode, _ fragments: [[UInt8]], pingsAfter: Set<Int> = []) {
        for (index, fragment) in fragments.enumerated() {
            let last = index == fragments.count - 1
            let whole = fragments.flatMap { $0 }
            frame(index == 0 ? opcode : .continuation, fin: last, fragment,
                  completes: last ? .message(opcode, whole) : nil)
            if !last && pingsAfter.contains(index) { ping(Array("p\(index)".utf8)) }
        }
    }

    mutating func close(_ code: UInt16, _ reason: String) {
        let payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
        frame(.close, payload, completes: .close(code, Array(reason.utf8)))
    }

    /// Bytes after a close frame: must be ignored, even if they are garbage.
    mutating func trailingGarbage() { bytes += [0xFF, 0x7F, 0x00, 0x13] }

    /// A representative mix: single frames, multi-byte UTF-8 split across
    /// fragments with interleaved control frames, empty frames, 16-bit and
    /// (when `large`) 64-bit lengths, and a final close.
    static func mixed(masked: Bool, large: Bool, seed: UInt64 = 7) -> StreamBuilder {
        var stream = StreamBuilder(masked: masked, seed: seed)
        var random = SplitMix64(seed: seed)
        let greeting = Array("Hello, wörld — κόσμε 🌍".utf8)
        stream.message(.text, greeting)
        stream.message(.binary, random.bytes(300))
        stream.message(.text, [])
        stream.ping([])
        let multiByte = Array("Aé🌍€end".utf8)
        // Cut inside é, inside 🌍 and inside €.
        stream.fragmented(.text, [Array(multiByte[0..<2]), Array(multiByte[2..<5]), [],
                                  Array(multiByte[5..<8]), Array(multiByte[8...])],
                          pingsAfter: [0, 2, 3])
        stream.pong(Array("pong".utf8))
        if large { stream.message(.binary, random.bytes(70_000)) }
        stream.fragmented(.binary, [[], [1, 2, 3], []], pingsAfter: [1])
        stream.message(.binary, random.bytes(125))
        stream.message(.binary, random.bytes(126))
        if large { stream.fragmented(.binary, [random.bytes(200), random.bytes(65_536 - 200)]) }
        stream.ping(random.bytes(125))
        stream.message(.text, Array(String(repeating: "ascii text ", count: 30).utf8))
        stream.close(1000, "bye ✓")
        stream.trailingGarbage()
        return stream
    }
}
