import Testing
import Framing

/// The decoder's tight loop over whole binary frames hands anything unusual
/// to the general path: these streams start with frames the loop takes and
/// then put the odd frame right behind them, so the check that must catch it
/// is the general path's, reached from the middle of a run.
@Suite struct DecoderFastPathTests {
    private let key: UInt32 = 0x37FA_213D

    private func run(_ payloads: [[UInt8]], masked: Bool) -> [UInt8] {
        payloads.flatMap { TestFrame.make(opcode: 2, payload: $0, maskKey: masked ? key : nil) }
    }

    @Test(arguments: [true, false])
    func aRunOfWholeBinaryFramesArrivesIntact(masked: Bool) {
        var random = SplitMix64(seed: 11)
        // 7-bit lengths (0, 1, 125) and 16-bit ones (126, 300, 65535).
        let payloads = [0, 1, 125, 126, 300, 65_535, 17].map { random.bytes($0) }
        let outcome = decode(run(payloads, masked: masked), configuration: .init(expectMasked: masked))
        #expect(outcome.error == nil)
        #expect(outcome.events == payloads.map { .message(.binary, $0) })
        #expect(outcome.finalBufferedCapacity == 0)
    }

    @Test func aFrameCutByTheEndOfTheReadIsFinishedByTheNextOne() {
        var random = SplitMix64(seed: 12)
        let payloads = [random.bytes(40), random.bytes(40), random.bytes(200)]
        let bytes = run(payloads, masked: true)
        // Cut inside the third frame's payload, then inside its 16-bit length.
        for cut in [bytes.count - 10, 2 * (6 + 40) + 3] {
            let outcome = decode(bytes, cuts: [cut])
            #expect(outcome.error == nil)
            #expect(outcome.events == payloads.map { .message(.binary, $0) })
        }
    }

    @Test func otherFramesBetweenBinaryOnesTakeTheGeneralPath() {
        let a: [UInt8] = [1, 2, 3], b: [UInt8] = [4, 5]
        let bytes = TestFrame.make(opcode: 2, payload: a, maskKey: key)
            + TestFrame.make(opcode: 1, payload: Array("hé".utf8), maskKey: key)        // text
            + TestFrame.make(opcode: 9, payload: [9], maskKey: key)                     // ping
            + TestFrame.make(opcode: 2, fin: false, payload: a, maskKey: key)           // fragment…
            + TestFrame.make(opcode: 0, payload: b, maskKey: key)                       // …and its end
            + TestFrame.make(opcode: 2, payload: b, maskKey: key)
        let outcome = decode(bytes)
        #expect(outcome.error == nil)
        #expect(outcome.events == [.message(.binary, a), .text("hé"), .ping([9]), .message(.binary, a + b), .message(.binary, b)])
    }

    @Test func aNonMinimalLengthAfterGoodFramesIsRejected() {
        let good = run([[1], [2, 2]], masked: true)
        let bad = TestFrame.make(opcode: 2, payload: [7, 7, 7], maskKey: key, length: .sixteenBit)
        let outcome = decode(good + bad)
        #expect(outcome.events == [.message(.binary, [1]), .message(.binary, [2, 2])])
        #expect(outcome.error?.closeCode == 1002)
    }

    @Test func anUnmaskedFrameToAServerAfterGoodFramesIsRejected() {
        let outcome = decode(run([[1]], masked: true) + run([[2]], masked: false))
        #expect(outcome.events == [.message(.binary, [1])])
        #expect(outcome.error?.closeCode == 1002)
    }

    @Test func aMessageOverTheLimitAfterGoodFramesIsRejected() {
        let outcome = decode(run([[UInt8]](repeating: [1], count: 3) + [[UInt8](repeating: 2, count: 200)], masked: true),
                             configuration: .init(maxMessageSize: 100))
        #expect(outcome.events.count == 3)
        #expect(outcome.error?.closeCode == 1009)
    }

    @Test func rsvBitsOnABinaryFrameAreRejected() {
        let outcome = decode(run([[1]], masked: true) + TestFrame.make(opcode: 2, rsv: 0b100, payload: [1], maskKey: key))
        #expect(outcome.events == [.message(.binary, [1])])
        #expect(outcome.error?.closeCode == 1002)
    }
}
