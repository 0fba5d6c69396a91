import Testing
import Framing

@Suite struct EncoderTests {
    @Test func headerSizesUseTheMinimalLengthEncoding() {
        #expect(WebSocketEncoder.maxServerHeaderSize == 10)
        for (length, size) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10), (1 << 40, 10)] {
            #expect(WebSocketEncoder.serverHeaderSize(payloadLength: length) == size)
            #expect(WebSocketEncoder.clientFrameSize(payloadLength: length) == size + 4 + length)
        }
    }

    @Test func serverHeaderBits() {
        var bytes = [UInt8](repeating: 0xEE, count: 12)
        let size = bytes.withUnsafeMutableBytes {
            WebSocketEncoder.writeServerHeader(opcode: .binary, fin: false, payloadLength: 1 << 33, to: $0.baseAddress!)
        }
        #expect(size == 10)
        #expect(bytes == [0x02, 0x7F, 0, 0, 0, 0x02, 0, 0, 0, 0, 0xEE, 0xEE])
        _ = bytes.withUnsafeMutableBytes {
            WebSocketEncoder.writeServerHeader(opcode: .close, payloadLength: 2, to: $0.baseAddress!)
        }
        #expect(Array(bytes.prefix(2)) == [0x88, 0x02])
    }

    @Test func closePayloadKeepsShortReasons() {
        #expect(WebSocketEncoder.closePayload(code: 1000, reason: "") == [0x03, 0xE8])
        #expect(WebSocketEncoder.closePayload(code: 4001, reason: "bye") == [0x0F, 0xA1] + Array("bye".utf8))
    }

    @Test func closePayloadTruncatesOnAUTF8Boundary() {
        for (reason, expectedReasonLength) in [
            (String(repeating: "a", count: 200), 123),
            (String(repeating: "é", count: 100), 122),       // 2-byte scalars: 61 fit
            (String(repeating: "€", count: 100), 123),       // 3-byte scalars: 41 fit exactly
            (String(repeating: "🌍", count: 100), 120),      // 4-byte scalars: 30 fit
            ("a" + String(repeating: "🌍", count: 40), 121),
        ] {
            let payload = WebSocketEncoder.closePayload(code: 1001, reason: reason)
            #expect(payload.count == 2 + expectedReasonLength, "\(reason.prefix(3))")
            #expect(payload.count <= 125)
            #expect(String(validating: payload.dropFirst(2), as: UTF8.self) != nil)
            #expect(reason.utf8.starts(with: payload.dropFirst(2)))
            // And a decoder accepts it as a close frame.
            let frame = TestFrame.make(opcode: 8, payload: payload, maskKey: 42)
            #expect(decode(frame).events == [.close(1001, Array(payload.dropFirst(2)))])
        }
    }

    @Test func randomRoundTripsThroughTheDecoderUnderRandomSplits() {
        var random = SplitMix64(seed: 99)
        for _ in 0..<60 {
            var clientStream: [UInt8] = []
            var serverStream: [UInt8] = []
            var expected: [RecordedEvent] = []
            for _ in 0..<(1 + random.next(below: 6)) {
                let size = [0, 1, 125, 126, 127, 1_000, 65_535, 65_536, 70_001][random.next(below: 9)]
                let payload = random.bytes(size)
                let opcode: WebSocketOpcode = random.next(below: 4) == 0 ? .ping : .binary
                let body = opcode == .ping ? Array(payload.prefix(125)) : payload
                var frame = [UInt8](repeating: 0, count: WebSocketEncoder.clientFrameSize(payloadLength: body.count))
                _ = frame.withUnsafeMutableBytes { destination in
                    body.withUnsafeBytes {
                        WebSocketEncoder.writeClientFrame(opcode: opcode, payload: $0,
                                                          maskKey: UInt32(truncatingIfNeeded: random.next()),
                                                          to: destination.baseAddress!)
                    }
                }
                clientStream += frame
                var header = [UInt8](repeating: 0, count: WebSocketEncoder.maxServerHeaderSize)
                let headerSize = header.withUnsafeMutableBytes {
                    WebSocketEncoder.writeServerHeader(opcode: opcode, payloadLength: body.count, to: $0.baseAddress!)
                }
                serverStream += header.prefix(headerSize) + body
                expected.append(opcode == .ping ? .ping(body) : .message(.binary, body))
            }
            let server = decode(clientStream, cuts: randomCuts(count: clientStream.count, using: &random))
            #expect(server.error == nil && server.events == expected)
            let client = decode(serverStream, cuts: randomCuts(count: serverStream.count, using: &random),
                                configuration: .init(expectMasked: false))
            #expect(client.error == nil && client.events == expected)
        }
    }
}
