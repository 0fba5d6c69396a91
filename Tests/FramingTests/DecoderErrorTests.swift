import Testing
import Framing

struct DecoderErrorCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    var expectMasked = true
    var maxMessageSize = 4 << 20
    let closeCode: UInt16
    /// Events that legitimately precede the error.
    var eventsBefore = 0

    var testDescription: String { name }
}

private let key: UInt32 = 0x0102_0304

/// A masked frame, as a client sends it.
private func masked(_ opcode: UInt8, fin: Bool = true, rsv: UInt8 = 0, _ payload: [UInt8] = [],
                    length: TestFrame.LengthForm = .minimal) -> [UInt8] {
    TestFrame.make(opcode: opcode, fin: fin, rsv: rsv, payload: payload, maskKey: key, length: length)
}

private func closeFrame(_ code: UInt16, _ reason: [UInt8] = []) -> [UInt8] {
    masked(8, [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
}

let decoderErrorCases: [DecoderErrorCase] = {
    var cases: [DecoderErrorCase] = [
        .init(name: "RSV1", bytes: masked(1, rsv: 0b100, [0x41]), closeCode: 1002),
        .init(name: "RSV2", bytes: masked(2, rsv: 0b010), closeCode: 1002),
        .init(name: "RSV3", bytes: masked(9, rsv: 0b001), closeCode: 1002),
        .init(name: "ping FIN=0", bytes: masked(9, fin: false), closeCode: 1002),
        .init(name: "close FIN=0", bytes: masked(8, fin: false), closeCode: 1002),
        .init(name: "ping payload 126", bytes: masked(9, [UInt8](repeating: 1, count: 126)), closeCode: 1002),
        .init(name: "pong with 64-bit length", bytes: masked(10, [], length: .raw64(70_000)), closeCode: 1002),
        .init(name: "continuation first", bytes: masked(0, [0x41]), closeCode: 1002),
        .init(name: "final continuation first", bytes: masked(0, fin: false), closeCode: 1002),
        .init(name: "continuation after complete message",
              bytes: masked(1, Array("ok".utf8)) + masked(0, [0x41]), closeCode: 1002, eventsBefore: 1),
        .init(name: "text while fragmented open", bytes: masked(1, fin: false, [0x41]) + masked(1, [0x42]), closeCode: 1002),
        .init(name: "binary while fragmented open",
              bytes: masked(2, fin: false, [1]) + masked(9) + masked(2, [2]), closeCode: 1002, eventsBefore: 1),
        .init(name: "unmasked client frame", bytes: TestFrame.make(opcode: 1, payload: [0x41]), closeCode: 1002),
        .init(name: "unmasked empty ping", bytes: TestFrame.make(opcode: 9), closeCode: 1002),
        .init(name: "masked server frame", bytes: masked(1, [0x41]), expectMasked: false, closeCode: 1002),
        .init(name: "16-bit length 125", bytes: masked(2, [UInt8](repeating: 0, count: 125), length: .sixteenBit), closeCode: 1002),
        .init(name: "16-bit length 0", bytes: masked(2, [], length: .sixteenBit), closeCode: 1002),
        .init(name: "64-bit length 65535", bytes: masked(2, [UInt8](repeating: 0, count: 65_535), length: .sixtyFourBit), closeCode: 1002),
        .init(name: "64-bit length 126", bytes: masked(2, [], length: .raw64(126)), closeCode: 1002),
        .init(name: "64-bit length top bit", bytes: masked(2, [], length: .raw64(1 << 63 | 70_000)), closeCode: 1002),
        .init(name: "64-bit length all ones", bytes: masked(2, [], length: .raw64(.max)), closeCode: 1002),
        .init(name: "single frame over max", bytes: masked(2, [UInt8](repeating: 0, count: 11)), maxMessageSize: 10, closeCode: 1009),
        .init(name: "header alone announces too much", bytes: masked(2, [], length: .raw64(5 << 20)), closeCode: 1009),
        .init(name: "fragments sum over max",
              bytes: masked(1, fin: false, Array("123456".utf8)) + masked(0, Array("78901".utf8)),
              maxMessageSize: 10, closeCode: 1009),
        .init(name: "invalid UTF-8 text", bytes: masked(1, [0x41, 0xC0, 0xAF]), closeCode: 1007),
        .init(name: "surrogate in text", bytes: masked(1, [0xED, 0xA0, 0x80]), closeCode: 1007),
        .init(name: "invalid UTF-8 across fragments",
              bytes: masked(1, fin: false, [0x41, 0xE2]) + masked(9) + masked(0, [0x28, 0xA1]), closeCode: 1007, eventsBefore: 1),
        .init(name: "incomplete code point at end of message",
              bytes: masked(1, fin: false, [0x41]) + masked(0, [0xE2, 0x82]), closeCode: 1007),
        .init(name: "incomplete code point at end of single frame", bytes: masked(1, [0xF0, 0x9F, 0x8C]), closeCode: 1007),
        .init(name: "close payload of one byte", bytes: masked(8, [0x03]), closeCode: 1002),
        .init(name: "close reason not UTF-8", bytes: closeFrame(1000, [0x61, 0xFF]), closeCode: 1007),
        .init(name: "close reason truncated UTF-8", bytes: closeFrame(1000, [0xC3]), closeCode: 1007),
        .init(name: "unmasked server error frame on client",
              bytes: TestFrame.make(opcode: 1, payload: [0xFF]), expectMasked: false, closeCode: 1007),
    ]
    for opcode: UInt8 in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.append(.init(name: "reserved opcode \(opcode)", bytes: masked(opcode, [0x41]), closeCode: 1002))
    }
    for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65_535] {
        cases.append(.init(name: "close code \(code)", bytes: closeFrame(code), closeCode: 1002))
    }
    return cases
}()

@Suite struct DecoderErrorTests {
    @Test(arguments: decoderErrorCases)
    func violationYieldsItsCloseCode(_ testCase: DecoderErrorCase) {
        let configuration = WebSocketDecoderConfiguration(
            expectMasked: testCase.expectMasked, maxMessageSize: testCase.maxMessageSize)
        for cuts in [[], everyByte(testCase.bytes.count)] {
            // Extra valid bytes after the bad ones must not change the verdict.
            let outcome = decode(testCase.bytes, cuts: cuts, configuration: configuration)
            #expect(outcome.error?.closeCode == testCase.closeCode)
            #expect(outcome.events.count == testCase.eventsBefore)
            #expect(outcome.finalBufferedCapacity == 0)
            #expect(!outcome.errorChangedAfterFailure)
        }
    }

    @Test func deadDecoderKeepsReturningTheSameError() {
        var decoder = WebSocketDecoder()
        var bad = masked(1, rsv: 0b100)
        let first = bad.withUnsafeMutableBytes { decoder.feed($0) { _ in } }
        #expect(first?.closeCode == 1002 && first?.reason.isEmpty == false)
        var good = masked(1, Array("fine".utf8))
        var events = 0
        let second = good.withUnsafeMutableBytes { decoder.feed($0) { _ in events += 1 } }
        #expect(second == first && events == 0)
    }

    @Test func invalidUTF8FailsBeforeTheFinalFragmentArrives() {
        var decoder = WebSocketDecoder()
        var firstFragment = masked(1, fin: false, [0x41, 0x42, 0xFF, 0x43])
        let error = firstFragment.withUnsafeMutableBytes { decoder.feed($0) { _ in } }
        #expect(error?.closeCode == 1007)
    }

    @Test func invalidUTF8FailsBeforeTheRestOfTheFrameArrives() {
        var decoder = WebSocketDecoder()
        let frame = masked(1, Array("valid start ".utf8) + [0xC0] + [UInt8](repeating: 0x41, count: 500))
        var head = Array(frame.prefix(4 + 4 + 13))  // header (2+2) + key (4) + 13 payload bytes
        let error = head.withUnsafeMutableBytes { decoder.feed($0) { _ in } }
        #expect(error?.closeCode == 1007)
    }

    @Test func oversizedMessageFailsFromItsHeaderAlone() {
        var decoder = WebSocketDecoder(configuration: .init(maxMessageSize: 1_000))
        var header = Array(masked(2, [UInt8](repeating: 0, count: 1_001)).prefix(8))
        let error = header.withUnsafeMutableBytes { decoder.feed($0) { _ in } }
        #expect(error?.closeCode == 1009)
        #expect(decoder.bufferedCapacity == 0)
    }

    @Test func validCloseCodesAndReasonsAreAccepted() {
        for code: UInt16 in [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let outcome = decode(closeFrame(code, Array("réason".utf8)))
            #expect(outcome.error == nil)
            #expect(outcome.events == [.close(code, Array("réason".utf8))])
        }
    }
}
