import Testing
import Framing

/// Heap use: nothing while idle, bounded and released while assembling.
@Suite struct DecoderMemoryTests {
    @Test func idleDecoderIsSmallAndHoldsNoHeap() {
        #expect(MemoryLayout<WebSocketDecoder>.size <= 160)
        let decoder = WebSocketDecoder()
        #expect(decoder.bufferedCapacity == 0)
    }

    @Test func storageIsReleasedAfterASplitMessageCompletes() {
        var decoder = WebSocketDecoder()
        let frame = TestFrame.make(opcode: 2, payload: [UInt8](repeating: 7, count: 1_000), maskKey: 3)
        var first = Array(frame[..<500]), second = Array(frame[500...])
        var events = 0
        first.withUnsafeMutableBytes { _ = decoder.feed($0) { _ in events += 1 } }
        #expect(events == 0 && decoder.bufferedCapacity > 0)
        // The final size is known from the header: no more than that is held.
        #expect(decoder.bufferedCapacity <= 1_000)
        second.withUnsafeMutableBytes { _ = decoder.feed($0) { _ in events += 1 } }
        #expect(events == 1 && decoder.bufferedCapacity == 0)
    }

    @Test func storageIsReleasedAfterAFragmentedMessageAndASplitControlFrame() {
        var decoder = WebSocketDecoder()
        var firstFragment = TestFrame.make(opcode: 1, fin: false, payload: Array("abc".utf8), maskKey: 3)
        var pingHead = Array(TestFrame.make(opcode: 9, payload: [UInt8](repeating: 1, count: 100), maskKey: 4).prefix(30))
        var pingTail = Array(TestFrame.make(opcode: 9, payload: [UInt8](repeating: 1, count: 100), maskKey: 4).dropFirst(30))
        var lastFragment = TestFrame.make(opcode: 0, payload: Array("def".utf8), maskKey: 5)
        var events: [RecordedEvent] = []
        firstFragment.withUnsafeMutableBytes { _ = decoder.feed($0) { events.append(RecordedEvent($0)) } }
        let messageCapacity = decoder.bufferedCapacity
        #expect(messageCapacity > 0)
        pingHead.withUnsafeMutableBytes { _ = decoder.feed($0) { events.append(RecordedEvent($0)) } }
        #expect(decoder.bufferedCapacity > messageCapacity && decoder.bufferedCapacity <= messageCapacity + 125)
        pingTail.withUnsafeMutableBytes { _ = decoder.feed($0) { events.append(RecordedEvent($0)) } }
        #expect(decoder.bufferedCapacity == messageCapacity)
        lastFragment.withUnsafeMutableBytes { _ = decoder.feed($0) { events.append(RecordedEvent($0)) } }
        #expect(decoder.bufferedCapacity == 0)
        #expect(events == [.ping([UInt8](repeating: 1, count: 100)), .text("abcdef")])
    }

    @Test func growthIsGeometricAndBoundedByTheMaximumMessageSize() {
        let maximum = 100_000
        var random = SplitMix64(seed: 8)
        let payload = random.bytes(maximum)
        var stream: [UInt8] = []
        for index in 0..<10 {
            let fragment = Array(payload[(index * 10_000)..<((index + 1) * 10_000)])
            stream += TestFrame.make(opcode: index == 0 ? 2 : 0, fin: index == 9, payload: fragment, maskKey: UInt32(index))
        }
        var decoder = WebSocketDecoder(configuration: .init(maxMessageSize: maximum))
        var events: [RecordedEvent] = []
        var capacities: [Int] = []
        var start = 0
        while start < stream.count {
            let end = min(stream.count, start + 997)
            var piece = Array(stream[start..<end])
            let error = piece.withUnsafeMutableBytes { decoder.feed($0) { events.append(RecordedEvent($0)) } }
            #expect(error == nil)
            #expect(decoder.bufferedCapacity <= maximum + 14)
            if capacities.last != decoder.bufferedCapacity { capacities.append(decoder.bufferedCapacity) }
            start = end
        }
        #expect(events == [.message(.binary, payload)])
        #expect(decoder.bufferedCapacity == 0)
        #expect(capacities.count <= 14, "\(capacities)")  // doubling from 256: ~10 steps
    }

    @Test func messageOfExactlyTheMaximumIsAccepted() {
        let payload = [UInt8](repeating: 0x61, count: 300)
        let frame = TestFrame.make(opcode: 1, payload: payload, maskKey: 1)
        for cuts in [[], [5], [150]] {
            let outcome = decode(frame, cuts: cuts, configuration: .init(maxMessageSize: 300))
            #expect(outcome.error == nil && outcome.events == [.message(.text, payload)])
            #expect(outcome.peakBufferedCapacity <= 300)
        }
        let empty = decode(TestFrame.make(opcode: 2, maskKey: 1), configuration: .init(maxMessageSize: 0))
        #expect(empty.error == nil && empty.events == [.message(.binary, [])])
    }
}
