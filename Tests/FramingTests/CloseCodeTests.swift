import Testing
import Framing

@Suite struct CloseCodeTests {
    @Test func wireValidityFollowsRFC6455Section7_4() {
        for code in UInt16.min...UInt16.max {
            let expected: Bool
            switch code {
            case 1000...1003, 1007...1011: expected = true
            case 1012...1014: expected = true   // registered with IANA after the RFC
            case 3000...4999: expected = true
            default: expected = false  // <1000, 1004-1006, 1015-2999, ≥5000
            }
            #expect(WebSocketCloseCode.isValidOnWire(code) == expected, "\(code)")
        }
    }

    @Test func namedCodes() {
        #expect([WebSocketCloseCode.normal, WebSocketCloseCode.goingAway, WebSocketCloseCode.protocolError,
                 WebSocketCloseCode.unsupportedData, WebSocketCloseCode.noStatus, WebSocketCloseCode.abnormal,
                 WebSocketCloseCode.invalidPayload, WebSocketCloseCode.policyViolation,
                 WebSocketCloseCode.messageTooBig, WebSocketCloseCode.mandatoryExtension,
                 WebSocketCloseCode.internalError] == [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011])
        #expect(!WebSocketCloseCode.isValidOnWire(WebSocketCloseCode.noStatus))
        #expect(!WebSocketCloseCode.isValidOnWire(WebSocketCloseCode.abnormal))
    }

    @Test func opcodeRawValuesAndControlBit() {
        #expect(WebSocketOpcode(rawValue: 3) == nil && WebSocketOpcode(rawValue: 0xB) == nil)
        #expect([WebSocketOpcode.close, .ping, .pong].allSatisfy { $0.isControl })
        #expect(![WebSocketOpcode.continuation, .text, .binary].contains { $0.isControl })
    }
}
