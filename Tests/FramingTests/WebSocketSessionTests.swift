import Testing
import Framing

/// The closing handshake, Ping/Pong and failure rules of `WebSocketSession`
/// (RFC 6455 §5.5, §7), with exact bytes in and exact actions out.
@Suite struct WebSocketSessionTests {
    enum Done: Equatable {
        case deliver(WebSocketOpcode, [UInt8])
        case send(WebSocketOpcode, [UInt8])
        case closeTransport
    }

    static let key: UInt32 = 0x37FA_213D

    func feed(_ session: inout WebSocketSession, _ bytes: [UInt8]) -> [Done] {
        var out: [Done] = []
        var copy = bytes
        copy.withUnsafeMutableBytes { buf in
            session.receive(buf) { action in
                switch action {
                case .deliver(let opcode, let payload, _): out.append(.deliver(opcode, Array(payload)))
                case .send(let opcode, let payload): out.append(.send(opcode, Array(payload)))
                case .closeTransport: out.append(.closeTransport)
                }
            }
        }
        return out
    }

    func masked(_ opcode: UInt8, _ payload: [UInt8]) -> [UInt8] { TestFrame.make(opcode: opcode, payload: payload, maskKey: Self.key) }

    @Test func pingIsAnsweredWithTheSamePayloadAndMessagesAreDelivered() {
        var s = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        let done = feed(&s, masked(0x9, Array("hi".utf8)) + masked(0x2, [1, 2, 3]) + masked(0xA, [9]))
        #expect(done == [.send(.pong, Array("hi".utf8)), .deliver(.binary, [1, 2, 3])])
        #expect(s.state == .open)
    }

    @Test func thePeersCloseIsEchoedWithItsCodeThenTheTransportCloses() {
        var s = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        let done = feed(&s, masked(0x8, [0x03, 0xE8] + Array("bye".utf8)) + masked(0x2, [7]))
        #expect(done == [.send(.close, [0x03, 0xE8]), .closeTransport], "frames after a Close are ignored")
        #expect(s.state == .closing && s.closeCode == 1000 && s.peerCloseCode == 1000)
    }

    @Test func anEmptyCloseIsEchoedEmptyAndCounts1005() {
        var s = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        #expect(feed(&s, masked(0x8, [])) == [.send(.close, []), .closeTransport])
        #expect(s.closeCode == 1005 && s.peerCloseCode == nil)
    }

    @Test func ourCloseThenTheirsClosesTheTransportWithoutAnotherClose() {
        var s = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        let first = s.close(code: 4008, reason: "slow consumer")
        let second = s.close(code: 1000, reason: "")
        #expect(first == [0x0F, 0xA8] + Array("slow consumer".utf8))
        #expect(second == nil, "only once")
        // While closing, nothing more is delivered or answered.
        #expect(feed(&s, masked(0x2, [1]) + masked(0x9, [])) == [])
        #expect(feed(&s, masked(0x8, [0x0F, 0xA8])) == [.closeTransport])
        #expect(s.closeCode == 4008 && s.peerCloseCode == 4008)
    }

    @Test func aProtocolErrorSendsCloseWithItsCodeOnce() {
        var s = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        let unmasked = TestFrame.make(opcode: 0x2, payload: [1])
        let done = feed(&s, unmasked)
        guard case .send(.close, let payload)? = done.first else {
            Issue.record("no Close: \(done)"); return
        }
        #expect(Array(payload.prefix(2)) == [0x03, 0xEA])
        #expect(done.last == .closeTransport && done.count == 2)
        #expect(s.closeCode == 1002 && s.error?.closeCode == 1002)
        #expect(feed(&s, masked(0x2, [1])) == [.closeTransport], "a dead decoder: just close")
    }

    @Test func tooBigAndBadUTF8GetTheirOwnCodes() {
        var big = WebSocketSession(expectMasked: true, maxMessageSize: 4)
        let done = feed(&big, masked(0x2, [1, 2, 3, 4, 5]))
        if case .send(.close, let payload)? = done.first {
            #expect(Array(payload.prefix(2)) == [0x03, 0xF1])
        } else {
            Issue.record("no Close: \(done)")
        }
        #expect(big.closeCode == 1009)
        var text = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        _ = feed(&text, masked(0x1, [0xC3, 0x28]))
        #expect(text.closeCode == 1007)
    }

    @Test func thePeersFinEndsTheSession() {
        var s = WebSocketSession(expectMasked: true, maxMessageSize: 1024)
        let ended = s.transportEnded()
        #expect(ended)
        #expect(s.state == .closing)
        #expect(feed(&s, masked(0x2, [1])) == [])
        s.transportClosed()
        let again = s.transportEnded()
        #expect(!again && s.state == .closed && s.closeCode == 1006)
    }

    @Test func theClientSideRefusesMaskedFrames() {
        var s = WebSocketSession(expectMasked: false, maxMessageSize: 1024)
        #expect(feed(&s, TestFrame.make(opcode: 0x2, payload: [5])) == [.deliver(.binary, [5])])
        let done = feed(&s, masked(0x2, [5]))
        #expect(done.last == .closeTransport && s.closeCode == 1002)
    }
}
