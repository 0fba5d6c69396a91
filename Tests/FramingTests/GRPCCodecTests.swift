import Testing
@testable import Framing

/// gRPC's length-prefixed messages around `relay.v1.Frame { bytes data = 1; }`,
/// the message reader, grpc-timeout, grpc-message, and the token bucket the
/// HTTP/2 session's bounds use.
@Suite struct GRPCCodecTests {
    // MARK: GRPCFrameCodec

    static func prefix(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: GRPCFrameCodec.maxPrefixSize + 4)
        let written = out.withUnsafeMutableBytes { GRPCFrameCodec.writePrefix(payloadLength: n, to: $0.baseAddress!) }
        #expect(written == GRPCFrameCodec.prefixSize(payloadLength: n), "n \(n)")
        #expect(out[written...].allSatisfy { $0 == 0xEE }, "nothing written past the prefix, n \(n)")
        return Array(out[0..<written])
    }

    @Test(arguments: [
        (0, [0x00, 0x00, 0x00, 0x00, 0x00] as [UInt8]),
        (1, [0x00, 0x00, 0x00, 0x00, 0x03, 0x0A, 0x01]),
        (127, [0x00, 0x00, 0x00, 0x00, 0x81, 0x0A, 0x7F]),
        (128, [0x00, 0x00, 0x00, 0x00, 0x83, 0x0A, 0x80, 0x01]),
        (16383, [0x00, 0x00, 0x00, 0x40, 0x02, 0x0A, 0xFF, 0x7F]),
        (16384, [0x00, 0x00, 0x00, 0x40, 0x04, 0x0A, 0x80, 0x80, 0x01]),
        (1 << 21, [0x00, 0x00, 0x20, 0x00, 0x05, 0x0A, 0x80, 0x80, 0x80, 0x01]),
    ])
    func prefixBytes(_ n: Int, _ expected: [UInt8]) {
        #expect(Self.prefix(n) == expected)
        let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let message = GRPCFrameCodec.message(payload)
        #expect(message.count == expected.count + n)
        #expect(Array(message.prefix(expected.count)) == expected)
        #expect(message.suffix(n).elementsEqual(payload))
        // The gRPC length is everything after the 5-byte prefix.
        let length = Int(message[1]) << 24 | Int(message[2]) << 16 | Int(message[3]) << 8 | Int(message[4])
        #expect(length == message.count - 5)
    }

    @Test func prefixSizesAtVarintBoundaries() {
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 0) == 5)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 1) == 7)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 127) == 7)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 128) == 8)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: (1 << 14) - 1) == 8)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 1 << 14) == 9)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: (1 << 21) - 1) == 9)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 1 << 21) == 10)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 1 << 28) == 11)
        #expect(GRPCFrameCodec.prefixSize(payloadLength: 1 << 28) == GRPCFrameCodec.maxPrefixSize)
    }

    static func decode(_ frame: [UInt8]) -> Result<[UInt8], GRPCFrameCodec.DecodeError> {
        frame.withUnsafeBytes { GRPCFrameCodec.data(of: $0).map { Array($0) } }
    }

    @Test(arguments: [0, 1, 127, 128, 300, 16384, 70000])
    func dataRoundTrips(_ n: Int) {
        let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 ^ 0x5A) }
        let message = GRPCFrameCodec.message(payload)
        #expect(Self.decode(Array(message.dropFirst(5))) == .success(payload))
    }

    @Test func theDataFieldPointsIntoTheMessage() {
        let frame: [UInt8] = [0x0A, 0x03, 7, 8, 9]
        frame.withUnsafeBytes { buf in
            guard case .success(let data) = GRPCFrameCodec.data(of: buf) else {
                Issue.record("not decoded")
                return
            }
            #expect(data.baseAddress == buf.baseAddress! + 2, "no copy")
            #expect(Array(data) == [7, 8, 9])
        }
    }

    @Test func unknownFieldsAreSkipped() {
        let frame: [UInt8] =
            [0x10, 0x96, 0x01]                                          // field 2, varint 150
            + [0x19, 1, 2, 3, 4, 5, 6, 7, 8]                            // field 3, fixed64
            + [0x25, 1, 2, 3, 4]                                        // field 4, fixed32
            + [0x2A, 0x02, 0x0A, 0x0A]                                  // field 5, bytes (looks like a field 1 header)
            + [0x0A, 0x02, 0xAB, 0xCD]                                  // field 1: data
            + [0x80, 0x01, 0x00]                                        // field 16, varint 0 (two-byte key)
            + [0xF8, 0xFF, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]  // field 2^29-1, 10-byte varint
        #expect(Self.decode(frame) == .success([0xAB, 0xCD]))
    }

    @Test func theLastDataFieldWinsAndAbsenceIsEmpty() {
        #expect(Self.decode([0x0A, 0x01, 1, 0x0A, 0x02, 2, 3]) == .success([2, 3]))
        #expect(Self.decode([0x0A, 0x01, 1, 0x0A, 0x00]) == .success([]))
        #expect(Self.decode([]) == .success([]))
        #expect(Self.decode([0x10, 0x01]) == .success([]))
    }

    @Test func aWrongWireTypeForDataIsStillSkipped() {
        // Field 1 as a varint: not `data`; protobuf would fail, the codec skips it.
        #expect(Self.decode([0x08, 0x05, 0x0A, 0x01, 9]) == .success([9]))
    }

    @Test(arguments: [
        [0x0A] as [UInt8],                          // key, no length
        [0x0A, 0x05, 1, 2],                         // length past the end
        [0x0A, 0x80],                               // unterminated length varint
        [0x80],                                     // unterminated key
        [0x10],                                     // varint field without its value
        [0x10, 0xFF],                               // varint value cut
        [0x19, 1, 2, 3],                            // fixed64 cut
        [0x25, 1, 2, 3],                            // fixed32 cut
        [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],       // a 4 GiB length
        [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],   // UInt64.max length
        [0x10] + [UInt8](repeating: 0x80, count: 10) + [0x01],                // an 11-byte varint
    ])
    func truncatedInput(_ frame: [UInt8]) {
        #expect(Self.decode(frame) == .failure(.truncated))
    }

    @Test func groupsAndReservedWireTypesAreRefused() {
        #expect(Self.decode([0x0B]) == .failure(.badWireType(3)))        // start group
        #expect(Self.decode([0x0C]) == .failure(.badWireType(4)))        // end group
        #expect(Self.decode([0x0E]) == .failure(.badWireType(6)))
        #expect(Self.decode([0x0A, 0x00, 0x0F]) == .failure(.badWireType(7)))
    }

    // MARK: GRPCMessageReader

    /// Feeds `inputs` one by one; the messages, and the first failure.
    static func read(_ inputs: [[UInt8]], limit: Int = 1 << 20) -> (messages: [[UInt8]], failure: GRPCMessageReader.Failure?, idle: Bool) {
        var reader = GRPCMessageReader(maxMessageSize: limit)
        var messages: [[UInt8]] = []
        for input in inputs {
            let f = input.withUnsafeBytes { reader.receive($0) { messages.append(Array($0)) } }
            if let f { return (messages, f, reader.isIdle) }
        }
        return (messages, nil, reader.isIdle)
    }

    static func framed(_ m: [UInt8]) -> [UInt8] {
        [0, UInt8(m.count >> 24 & 0xFF), UInt8(m.count >> 16 & 0xFF), UInt8(m.count >> 8 & 0xFF), UInt8(m.count & 0xFF)] + m
    }

    static let samples: [[UInt8]] = [
        [1, 2, 3], [], Array(repeating: 0xAA, count: 300), [0], [], [],
        GRPCFrameCodec.message(Array("hello".utf8)), (0..<70).map { UInt8($0) },
    ]

    @Test func oneMessagePerInput() {
        let r = Self.read(Self.samples.map(Self.framed))
        #expect(r.messages == Self.samples)
        #expect(r.failure == nil && r.idle)
    }

    @Test func manyMessagesInOneInput() {
        let r = Self.read([Self.samples.flatMap(Self.framed)])
        #expect(r.messages == Self.samples)
        #expect(r.failure == nil && r.idle)
    }

    @Test func byteByByteGivesTheSameMessages() {
        let bytes = Self.samples.flatMap(Self.framed)
        let r = Self.read(bytes.map { [$0] })
        #expect(r.messages == Self.samples)
        #expect(r.failure == nil && r.idle)
    }

    @Test func everySplitPointGivesTheSameMessages() {
        let bytes = Self.samples.flatMap(Self.framed)
        for cut in 0...bytes.count {
            let r = Self.read([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(r.messages == Self.samples, "cut at \(cut)")
            #expect(r.failure == nil && r.idle)
        }
        // Three pieces, every pair of cuts over the first 40 bytes.
        for a in 0...40 {
            for b in a...40 {
                let r = Self.read([Array(bytes[..<a]), Array(bytes[a..<b]), Array(bytes[b...])])
                #expect(r.messages == Self.samples, "cuts \(a), \(b)")
            }
        }
    }

    @Test func aPartialMessageIsNotIdle() {
        var reader = GRPCMessageReader(maxMessageSize: 100)
        #expect(reader.isIdle)
        var got: [[UInt8]] = []
        func feed(_ b: [UInt8]) -> GRPCMessageReader.Failure? { b.withUnsafeBytes { reader.receive($0) { got.append(Array($0)) } } }
        #expect(feed([0, 0]) == nil)
        #expect(!reader.isIdle, "half a prefix")
        #expect(feed([0, 0, 2, 9]) == nil)
        #expect(!reader.isIdle, "half a message")
        #expect(feed([8]) == nil)
        #expect(reader.isIdle && got == [[9, 8]])
        #expect(feed([]) == nil && got.count == 1)
    }

    @Test func aZeroLengthMessage() {
        #expect(Self.read([[0, 0, 0, 0, 0]]).messages == [[]])
        #expect(Self.read([[0, 0, 0, 0], [0]]).messages == [[]])
        #expect(Self.read([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]).messages == [[], []])
        #expect(Self.read([[0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [7]]).messages == [[], [7]])
    }

    @Test func aMessageAtTheLimitIsTaken() {
        let m = [UInt8](repeating: 3, count: 64)
        #expect(Self.read([Self.framed(m)], limit: 64).messages == [m])
    }

    @Test func aPrefixOverTheLimitFailsBeforeAnyPayload() {
        var reader = GRPCMessageReader(maxMessageSize: 64)
        var delivered = 0
        let whole = Self.framed([1, 2]) + Self.framed([UInt8](repeating: 0, count: 65))
        let f = whole.withUnsafeBytes { reader.receive($0) { _ in delivered += 1 } }
        #expect(f == .tooLarge(65))
        #expect(delivered == 1, "the message before it")

        // Only the prefix: refused at once, nothing of the payload needed.
        #expect(Self.read([[0, 0x7F, 0xFF, 0xFF, 0xFF]], limit: 64).failure == .tooLarge(0x7FFF_FFFF))
        #expect(Self.read([[0, 0xFF, 0xFF, 0xFF, 0xFF]], limit: 64).failure == .tooLarge(0xFFFF_FFFF))
        // A prefix split across inputs.
        #expect(Self.read([[0, 0], [0, 0], [65]], limit: 64).failure == .tooLarge(65))
        #expect(Self.read([[0], [0], [0], [1], [0]], limit: 64).failure == .tooLarge(256))
    }

    @Test func theCompressedFlagIsRefused() {
        #expect(Self.read([[1, 0, 0, 0, 1, 9]]).failure == .compressed)
        #expect(Self.read([[1], [0, 0, 0, 1]]).failure == .compressed)
        #expect(Self.read([[2, 0, 0, 0, 0]]).failure == .compressed, "any flag but 0")
        #expect(Self.read([Self.framed([5]) + [1, 0, 0, 0, 0]]).messages == [[5]])
        #expect(Self.read([[1, 0xFF, 0xFF, 0xFF, 0xFF]], limit: 0).failure == .compressed, "the flag is checked first")
    }

    @Test func aWholeMessageIsHandedOutInPlace() {
        var reader = GRPCMessageReader(maxMessageSize: 100)
        let input = Self.framed([1, 2, 3])
        input.withUnsafeBytes { buf in
            var base: UnsafeRawPointer?
            _ = reader.receive(buf) { base = $0.baseAddress }
            #expect(base == buf.baseAddress! + 5)
        }
    }

    // MARK: GRPCTimeout

    @Test func timeouts() {
        #expect(GRPCTimeout.nanoseconds("1S") == 1_000_000_000)
        #expect(GRPCTimeout.nanoseconds("100m") == 100_000_000)
        #expect(GRPCTimeout.nanoseconds("5u") == 5_000)
        #expect(GRPCTimeout.nanoseconds("2H") == 7_200_000_000_000)
        #expect(GRPCTimeout.nanoseconds("10n") == 10)
        #expect(GRPCTimeout.nanoseconds("3M") == 180_000_000_000)
        #expect(GRPCTimeout.nanoseconds("0S") == 0)
        #expect(GRPCTimeout.nanoseconds("12345678S") == 12_345_678_000_000_000, "8 digits")
        #expect(GRPCTimeout.nanoseconds("00000001m") == 1_000_000)
        #expect(GRPCTimeout.nanoseconds("99999999H") == UInt64.max, "overflow saturates")
    }

    @Test(arguments: ["", "S", "123456789S", "1x", "1", "12", "-1S", "+1S", "1 S", " 1S", "1s", "1h", "1.5S", "S1", "１S", "1SS"])
    func malformedTimeouts(_ value: String) {
        #expect(GRPCTimeout.nanoseconds(value) == nil)
    }

    // MARK: GRPCStatus

    @Test func grpcMessagesArePercentEncoded() {
        #expect(GRPCStatus.encodeMessage("pod not found") == "pod not found")
        #expect(GRPCStatus.encodeMessage("100%") == "100%25")
        #expect(GRPCStatus.encodeMessage("a\nb\tc\r") == "a%0Ab%09c%0D")
        #expect(GRPCStatus.encodeMessage("\u{0}\u{1F}\u{7F}") == "%00%1F%7F")
        #expect(GRPCStatus.encodeMessage("café ✓") == "caf%C3%A9 %E2%9C%93")
        #expect(GRPCStatus.encodeMessage(" ~!") == " ~!", "0x20 and 0x7E are printable")
        #expect(GRPCStatus.encodeMessage("") == "")
        #expect(GRPCStatus.ok.rawValue == 0 && GRPCStatus.resourceExhausted.rawValue == 8 && GRPCStatus.unauthenticated.rawValue == 16)
    }

    // MARK: TokenBucket

    static let second: UInt64 = 1_000_000_000

    /// A bucket behind a reference, so that `#expect` can take from it.
    final class Bucket {
        var bucket: TokenBucket
        init(burst: Int, perSecond: Int) { bucket = TokenBucket(burst: burst, perSecond: perSecond) }
        func take(now: UInt64) -> Bool { bucket.take(now: now) }
    }

    @Test func aBurstThenNothingUntilTheRefill() {
        let b = Bucket(burst: 3, perSecond: 2)         // one token per 500 ms
        let t0: UInt64 = 10 * Self.second
        #expect(b.take(now: t0) && b.take(now: t0) && b.take(now: t0))
        #expect(!b.take(now: t0))
        #expect(!b.take(now: t0 + 499_999_999))
        #expect(b.take(now: t0 + 500_000_000))
        #expect(!b.take(now: t0 + 500_000_000))
        #expect(!b.take(now: t0 + 999_999_999))
        #expect(b.take(now: t0 + Self.second))
    }

    @Test func theRefillStopsAtTheBurstAfterAShortIdle() {
        let b = Bucket(burst: 3, perSecond: 2)
        for _ in 0..<3 { #expect(b.take(now: 0)) }
        // 1.5 s: exactly the burst's worth.
        for _ in 0..<3 { #expect(b.take(now: 1_500_000_000)) }
        #expect(!b.take(now: 1_500_000_000))
    }

    /// Idle time beyond the burst is not banked (937dbb5 capped each refill
    /// at the burst but moved its clock only by what it added: 2402 takes
    /// here instead of 3).
    @Test func theRefillStopsAtTheBurstAfterALongIdle() {
        let b = Bucket(burst: 3, perSecond: 2)
        for _ in 0..<3 { #expect(b.take(now: 0)) }
        let later = 3600 * Self.second
        var taken = 0
        while taken < 100_000 && b.take(now: later) { taken += 1 }
        #expect(taken == 3)
        #expect(!b.take(now: later + 499_999_999))
        #expect(b.take(now: later + 500_000_000))
    }

    @Test func partialIntervalsAreKept() {
        let b = Bucket(burst: 2, perSecond: 4)         // 250 ms
        #expect(b.take(now: 0) && b.take(now: 0))
        #expect(b.take(now: 375_000_000), "one interval earned; the 125 ms over is kept (not full)")
        #expect(b.take(now: 500_000_000), "125 + 125 ms: the next interval")
        #expect(!b.take(now: 600_000_000))
    }

    @Test func aClockGoingBackwardsEarnsNothing() {
        let b = Bucket(burst: 2, perSecond: 1)
        #expect(b.take(now: 5 * Self.second) && b.take(now: 5 * Self.second))
        #expect(!b.take(now: 1 * Self.second))
        #expect(!b.take(now: 5 * Self.second))
        #expect(b.take(now: 6 * Self.second))
    }

    @Test func theFirstTakeStartsTheClockAnywhere() {
        let b = Bucket(burst: 1, perSecond: 1)
        #expect(b.take(now: UInt64.max - Self.second))
        #expect(!b.take(now: UInt64.max - 1))
        #expect(b.take(now: UInt64.max))
    }

    @Test func noRefillAtZeroPerSecond() {
        let b = Bucket(burst: 2, perSecond: 0)
        #expect(b.take(now: 0) && b.take(now: 0))
        #expect(!b.take(now: 1000 * Self.second))
    }

    @Test func aSustainedRateAtExactlyTheRefillNeverRunsDry() {
        let b = Bucket(burst: 1, perSecond: 100)
        for i in 0..<10_000 { #expect(b.take(now: UInt64(i) * 10_000_000), "take \(i)") }
        #expect(!b.take(now: 9_999 * 10_000_000 + 9_999_999))
    }
}
