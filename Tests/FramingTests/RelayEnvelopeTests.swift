import Testing
@testable import Framing

@Suite struct RelayEnvelopeTests {
    @Test func frameTypeValues() {
        #expect(RelayFrameType.allCases.map(\.rawValue) ==
            [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x21, 0x22, 0x23, 0x24])
        #expect(RelayFrameType.allCases.filter(\.isReplayable) == [.output, .control, .acpEvent])
        #expect(RelayFrameType.allCases.filter(\.isExtension) == [.position, .gap, .lagged, .presence, .error])
        #expect(RelayFrameType(rawValue: 0x0E) == nil)
        #expect(RelayFrameType(rawValue: 0x00) == nil)
    }

    @Test func position() {
        #expect(RelayEnvelope.position(epoch: 0x0102_0304, seq: 0x1122_3344_5566_7788)
            == [0x20, 0x01, 0x02, 0x03, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
    }

    @Test func gap() {
        #expect(RelayEnvelope.gap(epoch: 7, from: 1, to: 0xFFFF_FFFF_FFFF_FFFF)
            == [0x21, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func lagged() {
        #expect(RelayEnvelope.lagged(droppedFrames: 258) == [0x22, 0, 0, 0, 0, 0, 0, 1, 2])
    }

    @Test func presence() {
        #expect(RelayEnvelope.presence(browsers: 3, writers: 1) == [0x23] + Array(#"{"browsers":3,"writers":1}"#.utf8))
    }

    @Test func error() {
        #expect(RelayEnvelope.error(code: 4001, reason: "né") == [0x24, 0x0F, 0xA1, 0x6E, 0xC3, 0xA9])
        #expect(RelayEnvelope.error(code: 0, reason: "") == [0x24, 0, 0])
    }

    @Test func resize() {
        let bytes = RelayEnvelope.resize(cols: 200, rows: 0x0132)
        #expect(bytes == [0x04, 0x00, 0xC8, 0x01, 0x32])
        let parsed = bytes.dropFirst().withUnsafeBytes { RelayEnvelope.parseResize($0) }
        #expect(parsed?.cols == 200)
        #expect(parsed?.rows == 306)
    }

    @Test func parseResizeNeedsFourBytesAndIgnoresExtra() {
        let short: [UInt8] = [0, 80, 0]
        #expect(short.withUnsafeBytes { RelayEnvelope.parseResize($0) } == nil)
        #expect([UInt8]().withUnsafeBytes { RelayEnvelope.parseResize($0) } == nil)
        let long: [UInt8] = [0xFF, 0xFF, 0, 24, 9]
        let parsed = long.withUnsafeBytes { RelayEnvelope.parseResize($0) }
        #expect(parsed?.cols == 65535)
        #expect(parsed?.rows == 24)
    }
}
