import Testing
import Framing

/// RFC 6455 §5.7 examples, decoded and re-encoded byte for byte.
@Suite struct RFCExampleTests {
    static let hello = Array("Hello".utf8)
    static let unmaskedText: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
    static let maskedText: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
    static let fragmentedText: [[UInt8]] = [[0x01, 0x03, 0x48, 0x65, 0x6C], [0x80, 0x02, 0x6C, 0x6F]]
    static let unmaskedPing: [UInt8] = [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
    static let maskedPong: [UInt8] = [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
    static let binary256Header: [UInt8] = [0x82, 0x7E, 0x01, 0x00]
    static let binary64KHeader: [UInt8] = [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]

    static let client = WebSocketDecoderConfiguration(expectMasked: false)
    static let server = WebSocketDecoderConfiguration(expectMasked: true)

    private func serverFrame(_ opcode: WebSocketOpcode, fin: Bool = true, _ payload: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: WebSocketEncoder.serverHeaderSize(payloadLength: payload.count))
        let written = bytes.withUnsafeMutableBytes {
            WebSocketEncoder.writeServerHeader(opcode: opcode, fin: fin, payloadLength: payload.count, to: $0.baseAddress!)
        }
        #expect(written == bytes.count)
        return bytes + payload
    }

    private func clientFrame(_ opcode: WebSocketOpcode, _ payload: [UInt8], key: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: WebSocketEncoder.clientFrameSize(payloadLength: payload.count))
        let written = bytes.withUnsafeMutableBytes { destination in
            payload.withUnsafeBytes {
                WebSocketEncoder.writeClientFrame(opcode: opcode, payload: $0, maskKey: key, to: destination.baseAddress!)
            }
        }
        #expect(written == bytes.count)
        return bytes
    }

    @Test func singleFrameUnmaskedText() {
        let outcome = decode(Self.unmaskedText, configuration: Self.client)
        #expect(outcome.events == [.text("Hello")] && outcome.error == nil)
        #expect(serverFrame(.text, Self.hello) == Self.unmaskedText)
    }

    @Test func singleFrameMaskedText() {
        let outcome = decode(Self.maskedText, configuration: Self.server)
        #expect(outcome.events == [.text("Hello")] && outcome.error == nil)
        #expect(clientFrame(.text, Self.hello, key: 0x37FA_213D) == Self.maskedText)
    }

    @Test func fragmentedUnmaskedText() {
        let stream = Self.fragmentedText.flatMap { $0 }
        #expect(decode(stream, configuration: Self.client).events == [.text("Hello")])
        // Also with each frame in its own feed.
        #expect(decode(stream, cuts: [5], configuration: Self.client).events == [.text("Hello")])
        #expect(serverFrame(.text, fin: false, Array("Hel".utf8)) == Self.fragmentedText[0])
        #expect(serverFrame(.continuation, Array("lo".utf8)) == Self.fragmentedText[1])
    }

    @Test func unmaskedPingAndMaskedPong() {
        #expect(decode(Self.unmaskedPing, configuration: Self.client).events == [.ping(Self.hello)])
        #expect(decode(Self.maskedPong, configuration: Self.server).events == [.pong(Self.hello)])
        #expect(serverFrame(.ping, Self.hello) == Self.unmaskedPing)
        #expect(clientFrame(.pong, Self.hello, key: 0x37FA_213D) == Self.maskedPong)
    }

    @Test func binary256BytesWith16BitLength() {
        let payload = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let frame = Self.binary256Header + payload
        #expect(decode(frame, configuration: Self.client).events == [.message(.binary, payload)])
        #expect(serverFrame(.binary, payload) == frame)
        let masked = clientFrame(.binary, payload, key: 0x0102_0304)
        #expect(Array(masked.prefix(4)) == [0x82, 0xFE, 0x01, 0x00])
        #expect(decode(masked, configuration: Self.server).events == [.message(.binary, payload)])
    }

    @Test func binary64KiBWith64BitLength() {
        let payload = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let frame = Self.binary64KHeader + payload
        #expect(decode(frame, configuration: Self.client).events == [.message(.binary, payload)])
        #expect(decode(frame, cuts: [3, 9, 40_000], configuration: Self.client).events == [.message(.binary, payload)])
        #expect(serverFrame(.binary, payload) == frame)
        let masked = clientFrame(.binary, payload, key: 0xDEAD_BEEF)
        #expect(Array(masked.prefix(10)) == [0x82, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00])
        #expect(decode(masked, configuration: Self.server).events == [.message(.binary, payload)])
    }
}
