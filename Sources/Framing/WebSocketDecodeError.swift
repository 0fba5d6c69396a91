/// A protocol violation by the peer: the connection must be closed with
/// `closeCode` (RFC 6455 §7.1.7).
public struct WebSocketDecodeError: Error, Equatable, Sendable {
    public let closeCode: UInt16
    public let reason: String

    public init(closeCode: UInt16, reason: String) {
        self.closeCode = closeCode
        self.reason = reason
    }
}

/// Every way decoding can fail. A one-byte enum keeps the decoder small; the
/// public error (with its `String`) is built only when a failure is reported.
enum WebSocketDecodeFailure: UInt8, Error {
    case reservedBitsSet
    case reservedOpcode
    case fragmentedControlFrame
    case controlFrameTooLong
    case unexpectedContinuation
    case expectedContinuation
    case unmaskedClientFrame
    case maskedServerFrame
    case nonMinimalLength
    case lengthTopBitSet
    case messageTooBig
    case invalidUTF8Text
    case closePayloadOneByte
    case invalidCloseCode
    case invalidUTF8CloseReason
    /// permessage-deflate: RSV1 on a continuation or control frame.
    case compressedBitMisplaced
    /// permessage-deflate: the message is not valid DEFLATE data.
    case invalidCompressedData

    var closeCode: UInt16 {
        switch self {
        case .messageTooBig: return WebSocketCloseCode.messageTooBig
        case .invalidUTF8Text, .invalidUTF8CloseReason, .invalidCompressedData: return WebSocketCloseCode.invalidPayload
        default: return WebSocketCloseCode.protocolError
        }
    }

    var reason: String {
        switch self {
        case .reservedBitsSet: return "RSV bit set but no extension negotiated"
        case .reservedOpcode: return "reserved opcode"
        case .fragmentedControlFrame: return "fragmented control frame"
        case .controlFrameTooLong: return "control frame payload longer than 125 bytes"
        case .unexpectedContinuation: return "continuation frame without a message in progress"
        case .expectedContinuation: return "new data frame while a fragmented message is in progress"
        case .unmaskedClientFrame: return "client frame is not masked"
        case .maskedServerFrame: return "server frame is masked"
        case .nonMinimalLength: return "payload length not minimally encoded"
        case .lengthTopBitSet: return "64-bit payload length has its most significant bit set"
        case .messageTooBig: return "message larger than the maximum message size"
        case .invalidUTF8Text: return "text message is not valid UTF-8"
        case .closePayloadOneByte: return "close frame payload of one byte"
        case .invalidCloseCode: return "close code not allowed on the wire"
        case .invalidUTF8CloseReason: return "close reason is not valid UTF-8"
        case .compressedBitMisplaced: return "RSV1 set on a continuation or control frame"
        case .invalidCompressedData: return "compressed message is not valid DEFLATE data"
        }
    }

    var error: WebSocketDecodeError { WebSocketDecodeError(closeCode: closeCode, reason: reason) }
}
