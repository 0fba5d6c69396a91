import Testing
import Framing

/// Incremental decoding: any split of a valid stream yields the same events.
@Suite struct DecoderSplitTests {
    @Test(arguments: [true, false])
    func wholeStreamDecodesToTheExpectedEvents(masked: Bool) {
        let stream = StreamBuilder.mixed(masked: masked, large: true)
        let outcome = decode(stream.bytes, configuration: .init(expectMasked: masked))
        #expect(outcome.error == nil)
        #expect(outcome.events == stream.events)
        #expect(outcome.finalBufferedCapacity == 0)
    }

    @Test(arguments: [true, false])
    func randomSplitsOfALargeStreamDecodeIdentically(masked: Bool) {
        let stream = StreamBuilder.mixed(masked: masked, large: true)
        var random = SplitMix64(seed: masked ? 11 : 12)
        for _ in 0..<150 {
            let cuts = randomCuts(count: stream.bytes.count, using: &random)
            let outcome = decode(stream.bytes, cuts: cuts, configuration: .init(expectMasked: masked))
            #expect(outcome.error == nil)
            #expect(outcome.events == stream.events, "cuts: \(cuts.prefix(20))…")
            #expect(outcome.finalBufferedCapacity == 0)
        }
    }

    @Test(arguments: [true, false])
    func oneByteAtATime(masked: Bool) {
        let stream = StreamBuilder.mixed(masked: masked, large: true)
        let outcome = decode(stream.bytes, cuts: everyByte(stream.bytes.count), configuration: .init(expectMasked: masked))
        #expect(outcome.error == nil)
        #expect(outcome.events == stream.events)
    }

    @Test(arguments: [true, false])
    func everyTwoPieceSplit(masked: Bool) {
        let stream = StreamBuilder.mixed(masked: masked, large: false)
        for cut in 0...stream.bytes.count {
            let outcome = decode(stream.bytes, cuts: [cut], configuration: .init(expectMasked: masked))
            #expect(outcome.error == nil && outcome.events == stream.events, "cut at \(cut)")
        }
    }

    @Test(arguments: [true, false])
    func everyTruncationYieldsOnlyTheCompletedEvents(masked: Bool) {
        let stream = StreamBuilder.mixed(masked: masked, large: false)
        var random = SplitMix64(seed: 21)
        for length in 0...stream.bytes.count {
            let prefix = Array(stream.bytes.prefix(length))
            let expected = stream.events(completedWithin: length)
            let whole = decode(prefix, configuration: .init(expectMasked: masked))
            #expect(whole.error == nil && whole.events == expected, "truncated at \(length)")
            let pieces = decode(prefix, cuts: randomCuts(count: length, using: &random), configuration: .init(expectMasked: masked))
            #expect(pieces.error == nil && pieces.events == expected, "truncated at \(length), split")
        }
    }

    @Test func bytesAfterCloseAreIgnored() {
        let close = TestFrame.make(opcode: 8, payload: [0x03, 0xE8], maskKey: 1)
        let after = TestFrame.text("late", maskKey: 2) + [0xFF, 0xFF]
        let outcome = decode(close + after, cuts: [close.count + 1])
        #expect(outcome.error == nil)
        #expect(outcome.events == [.close(1000, [])])
        #expect(decode(TestFrame.make(opcode: 8, maskKey: 9) + after).events == [.close(nil, [])])
    }

    @Test func emptyInputIsHarmless() {
        var decoder = WebSocketDecoder()
        var events = 0
        #expect(decoder.feed(UnsafeMutableRawBufferPointer(start: nil, count: 0)) { _ in events += 1 } == nil)
        var frame = TestFrame.text("x", maskKey: 5)
        let error = frame.withUnsafeMutableBytes { decoder.feed($0) { _ in events += 1 } }
        #expect(error == nil && events == 1)
    }
}
