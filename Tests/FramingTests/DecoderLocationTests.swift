import Testing
import Framing

/// Zero-copy delivery: where `.input` offsets point, and when they are not used.
@Suite struct DecoderLocationTests {
    struct Delivered {
        var opcode: WebSocketOpcode
        var payloadAddress: UnsafeRawPointer?
        var count: Int
        var location: WebSocketPayloadLocation
    }

    private func feed(_ decoder: inout WebSocketDecoder, _ buffer: UnsafeMutableRawBufferPointer,
                      _ delivered: inout [Delivered]) -> WebSocketDecodeError? {
        decoder.feed(buffer) { event in
            if case .message(let opcode, let payload, let location) = event {
                delivered.append(Delivered(opcode: opcode, payloadAddress: payload.baseAddress,
                                           count: payload.count, location: location))
            }
        }
    }

    @Test func wholeFramesInTheInputAreDeliveredInPlace() {
        var random = SplitMix64(seed: 5)
        let payloads: [(WebSocketOpcode, [UInt8])] = [
            (.text, Array("Hello".utf8)), (.binary, random.bytes(300)), (.text, []),
            (.binary, random.bytes(70_000)), (.text, Array("κόσμε".utf8)),
        ]
        var stream: [UInt8] = []
        var starts: [Int] = []
        for (index, (opcode, payload)) in payloads.enumerated() {
            starts.append(stream.count)
            stream += TestFrame.make(opcode: opcode.rawValue, payload: payload, maskKey: UInt32(0xA1B2_C3D4 &+ index))
            stream += TestFrame.make(opcode: 9, payload: [1, 2], maskKey: 7)  // a ping between messages
        }
        var decoder = WebSocketDecoder()
        var delivered: [Delivered] = []
        stream.withUnsafeMutableBytes { buffer in
            #expect(feed(&decoder, buffer, &delivered) == nil)
            #expect(delivered.count == payloads.count)
            for (index, message) in delivered.enumerated() {
                let (opcode, payload) = payloads[index]
                let headerSize = (payload.count <= 125 ? 2 : payload.count <= 0xFFFF ? 4 : 10) + 4
                #expect(message.opcode == opcode)
                #expect(message.location == .input(frameStart: starts[index], payloadOffset: starts[index] + headerSize))
                #expect(message.payloadAddress == UnsafeRawPointer(buffer.baseAddress! + starts[index] + headerSize))
                #expect(message.count == payload.count)
                #expect(buffer[starts[index]] == 0x80 | opcode.rawValue)
                // Unmasked in place: the caller's buffer now holds the plain payload.
                let range = (starts[index] + headerSize)..<(starts[index] + headerSize + payload.count)
                #expect(Array(buffer[range]) == payload)
            }
        }
        #expect(decoder.bufferedCapacity == 0)
    }

    @Test func relayCanRewriteAServerHeaderInPlace() {
        var random = SplitMix64(seed: 6)
        let payloads = [random.bytes(10), random.bytes(1_000), random.bytes(66_000)]
        var stream = payloads.enumerated().flatMap { TestFrame.make(opcode: 2, payload: $0.element, maskKey: UInt32($0.offset + 1)) }
        var decoder = WebSocketDecoder()
        var serverFrames: [UInt8] = []
        stream.withUnsafeMutableBytes { buffer in
            let error = decoder.feed(buffer) { event in
                guard case .message(let opcode, let payload, .input(let frameStart, let payloadOffset)) = event else {
                    Issue.record("expected an in-place message")
                    return
                }
                let headerSize = WebSocketEncoder.serverHeaderSize(payloadLength: payload.count)
                #expect(payloadOffset - frameStart >= headerSize)  // a client header is always longer
                let headerStart = payloadOffset - headerSize
                WebSocketEncoder.writeServerHeader(opcode: opcode, payloadLength: payload.count,
                                                   to: buffer.baseAddress! + headerStart)
                serverFrames += buffer[headerStart..<(payloadOffset + payload.count)]
            }
            #expect(error == nil)
        }
        let outcome = decode(serverFrames, cuts: [7, 500], configuration: .init(expectMasked: false))
        #expect(outcome.error == nil)
        #expect(outcome.events == payloads.map { .message(.binary, $0) })
    }

    @Test func splitOrFragmentedMessagesAreAssembled() {
        let frame = TestFrame.make(opcode: 2, payload: [1, 2, 3, 4, 5, 6], maskKey: 9)
        // Header split: the payload is whole in the second input but its header is not.
        // Payload split: assembled in decoder storage.
        for cut in [1, 3, 6, 7, 9, frame.count - 1] {
            var decoder = WebSocketDecoder()
            var delivered: [Delivered] = []
            var first = Array(frame[..<cut]), second = Array(frame[cut...])
            first.withUnsafeMutableBytes { #expect(feed(&decoder, $0, &delivered) == nil) }
            #expect(delivered.isEmpty)
            second.withUnsafeMutableBytes { #expect(feed(&decoder, $0, &delivered) == nil) }
            #expect(delivered.count == 1 && delivered.first?.location == .assembled, "cut \(cut)")
        }
        var fragmented = TestFrame.make(opcode: 1, fin: false, payload: [0x41], maskKey: 1)
            + TestFrame.make(opcode: 0, payload: [0x42], maskKey: 2)
        var decoder = WebSocketDecoder()
        var delivered: [Delivered] = []
        fragmented.withUnsafeMutableBytes { #expect(feed(&decoder, $0, &delivered) == nil) }
        #expect(delivered.count == 1 && delivered.first?.location == .assembled)
    }
}
