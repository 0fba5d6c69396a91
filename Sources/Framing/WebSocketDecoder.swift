/// Sans-I/O RFC 6455 frame decoder: bytes in, events out.
///
/// Works over any split of the input. A message that is one frame lying
/// entirely inside the fed buffer is unmasked in place and delivered without
/// a copy; only the bytes of an incomplete frame or message are copied into
/// storage that exists just until that message is delivered.
public struct WebSocketDecoder: ~Copyable {
    private enum Phase: Equatable {
        case awaitingHeader
        case readingPayload
        /// A close frame was delivered; later bytes are ignored.
        case closed
        /// A protocol error was reported; it is reported again on every feed.
        case failed(WebSocketDecodeFailure)
    }

    // Fields ordered largest first: one decoder lives in every connection,
    // and padding between small fields would cost every idle one.
    private let maxMessageSize: Int

    /// The frame whose payload is being read, and how much of it is missing.
    private var frame = WebSocketFrameHeader(fin: true, opcode: .binary, maskKey: nil, payloadLength: 0)
    private var frameRemaining = 0

    /// Payload of the message in progress when it is not delivered in place.
    private var message = AssemblyBuffer()
    /// Payload of a control frame split across feeds (≤ 125 bytes).
    private var control = AssemblyBuffer()
    private var partialHeader = PartialFrameHeader()

    private let expectMasked: Bool
    /// permessage-deflate negotiated (RSV1 allowed on a message's first frame).
    private let compressed: Bool
    /// The message in progress is compressed (its first frame had RSV1).
    private var messageCompressed = false
    private var phase = Phase.awaitingHeader
    /// Payload bytes of the current frame unmasked so far, mod 4.
    private var maskPhase: UInt8 = 0
    /// The text/binary message in progress (single or fragmented), if any.
    private var messageOpcode: WebSocketOpcode? = nil
    private var utf8 = UTF8Validator()

    public init(configuration: WebSocketDecoderConfiguration = .init()) {
        expectMasked = configuration.expectMasked
        maxMessageSize = configuration.maxMessageSize
        compressed = configuration.compressed
    }

    /// The protocol error the decoder stopped at, if any.
    public var failure: WebSocketDecodeError? {
        if case .failed(let f) = phase { return f.error }
        return nil
    }

    /// Heap bytes currently held for incomplete frames and messages; 0 when idle.
    public var bufferedCapacity: Int { message.capacity + control.capacity }

    /// Unmasks in place, emits every complete event; keeps (copies) only the
    /// bytes of an incomplete frame/message. Returns nil, or the protocol
    /// error (after which the decoder is dead and further feeds return the
    /// same error). Bytes after a close frame are ignored.
    /// `inflater`: with permessage-deflate, the codec that inflates
    /// compressed messages (one per loop; the decoder keeps no inflate
    /// state); a compressed message is then delivered inflated, as
    /// `.assembled`, its inflated size bounded by the message limit.
    public mutating func feed(
        _ input: UnsafeMutableRawBufferPointer, inflater: PerMessageDeflateCodec? = nil, _ onEvent: (WebSocketEvent) -> Void
    ) -> WebSocketDecodeError? {
        switch phase {
        case .failed(let failure): return failure.error
        case .closed: return nil
        case .awaitingHeader, .readingPayload: break
        }
        do {
            try decode(input, inflater: inflater, onEvent)
            return nil
        } catch {
            phase = .failed(error)
            message.release()
            control.release()
            return error.error
        }
    }

    private mutating func decode(
        _ input: UnsafeMutableRawBufferPointer, inflater: PerMessageDeflateCodec?, _ onEvent: (WebSocketEvent) -> Void
    ) throws(WebSocketDecodeFailure) {
        guard let base = input.baseAddress else { return }
        let end = input.count
        var offset = 0
        // Set when the current frame's header completed during this feed:
        // only then can its payload still be wholly inside `input`.
        var headerCompletedHere = false
        // Offset of the header's first byte when the whole header is in `input`.
        var frameStart: Int? = nil

        while true {
            if phase == .awaitingHeader {
                if partialHeader.isEmpty && messageOpcode == nil {
                    offset = deliverWholeBinaryFrames(base, from: offset, end: end, onEvent)
                }
                guard offset < end else { return }
                let start = partialHeader.isEmpty ? offset : nil
                guard let header = try readHeader(base, end: end, offset: &offset) else { return }
                try begin(header)
                headerCompletedHere = true
                frameStart = start
                phase = .readingPayload
            }
            let frameDone = try readPayload(
                base, end: end, offset: &offset,
                headerCompletedHere: headerCompletedHere, frameStart: frameStart, inflater: inflater, onEvent)
            guard frameDone else { return }
            if phase == .closed { return }
            phase = .awaitingHeader
        }
    }

    /// The common case in one tight loop: complete, unfragmented binary
    /// frames (FIN, no RSV bits, masked as expected, 7- or 16-bit length
    /// within the message limit) lying wholly in the input, delivered in
    /// place. Stops at the first frame that is anything else (or cut by the
    /// end of the input) and returns its offset for the general path, which
    /// parses and checks it byte by byte as before.
    @inline(__always)
    private func deliverWholeBinaryFrames(
        _ base: UnsafeMutableRawPointer, from start: Int, end: Int, _ onEvent: (WebSocketEvent) -> Void
    ) -> Int {
        let maskBit: UInt8 = expectMasked ? 0x80 : 0
        let maskSize = expectMasked ? 4 : 0
        var offset = start
        while end - offset >= 2 {
            let first = base.load(fromByteOffset: offset, as: UInt8.self)
            let second = base.load(fromByteOffset: offset + 1, as: UInt8.self)
            guard first == 0x80 | WebSocketOpcode.binary.rawValue, second & 0x80 == maskBit else { break }
            guard let (length, lengthBytes) = WebSocketFrameHeader.shortLength(second: second, at: base + offset, available: end - offset)
            else { break }
            let headerSize = 2 + lengthBytes + maskSize
            guard length <= maxMessageSize, end - offset >= headerSize + length else { break }
            let payload = UnsafeMutableRawBufferPointer(start: base + offset + headerSize, count: length)
            if expectMasked {
                let key = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset + headerSize - 4, as: UInt32.self))
                _ = webSocketUnmask(payload, key: key, phase: 0)
            }
            onEvent(.message(opcode: .binary, payload: UnsafeRawBufferPointer(payload),
                             location: .input(frameStart: offset, payloadOffset: offset + headerSize)))
            offset += headerSize + length
        }
        return offset
    }

    /// Returns the next header, or nil when the input ends inside it (the
    /// bytes seen so far are then kept in `partialHeader`).
    private mutating func readHeader(
        _ base: UnsafeMutableRawPointer, end: Int, offset: inout Int
    ) throws(WebSocketDecodeFailure) -> WebSocketFrameHeader? {
        if partialHeader.isEmpty && end - offset >= 2 {
            let first = base.load(fromByteOffset: offset, as: UInt8.self)
            let second = base.load(fromByteOffset: offset + 1, as: UInt8.self)
            try checkLeadingBytes(first, second)
            let size = WebSocketFrameHeader.size(secondByte: second)
            if end - offset >= size {
                // Fast path: the whole header is in the input.
                let header = try WebSocketFrameHeader.parse(base + offset)
                offset += size
                return header
            }
        }
        guard partialHeader.gather(from: base, offset: &offset, end: end, upTo: 2) else { return nil }
        let second = partialHeader.byte(at: 1)
        try checkLeadingBytes(partialHeader.byte(at: 0), second)
        let size = WebSocketFrameHeader.size(secondByte: second)
        guard partialHeader.gather(from: base, offset: &offset, end: end, upTo: size) else { return nil }
        let header = try partialHeader.parse()
        partialHeader.clear()
        return header
    }

    private func checkLeadingBytes(_ first: UInt8, _ second: UInt8) throws(WebSocketDecodeFailure) {
        try WebSocketFrameHeader.checkLeadingBytes(
            first, second, expectMasked: expectMasked, messageInProgress: messageOpcode != nil, compressed: compressed)
    }

    private mutating func begin(_ header: WebSocketFrameHeader) throws(WebSocketDecodeFailure) {
        if !header.opcode.isControl {
            // Everything received of a message in progress is in `message`,
            // so the limit is enforced before any of this payload is buffered.
            let received = header.opcode == .continuation ? message.count : 0
            guard header.payloadLength <= maxMessageSize - received else { throw .messageTooBig }
            if header.opcode != .continuation {
                messageOpcode = header.opcode
                messageCompressed = header.rsv1
                utf8.reset()
            }
        }
        frame = header
        frameRemaining = header.payloadLength
        maskPhase = 0
    }

    /// Consumes as much of the current frame's payload as the input holds.
    /// Returns true when the frame is complete (and its event, if any, sent).
    private mutating func readPayload(
        _ base: UnsafeMutableRawPointer, end: Int, offset: inout Int,
        headerCompletedHere: Bool, frameStart: Int?, inflater: PerMessageDeflateCodec?, _ onEvent: (WebSocketEvent) -> Void
    ) throws(WebSocketDecodeFailure) -> Bool {
        let payloadOffset = offset
        let chunkLength = min(end - offset, frameRemaining)
        let chunk = UnsafeMutableRawBufferPointer(start: base + offset, count: chunkLength)
        if let key = frame.maskKey {
            maskPhase = UInt8(webSocketUnmask(chunk, key: key, phase: Int(maskPhase)))
        }
        let wholeFrameInInput = headerCompletedHere && chunkLength == frameRemaining
        offset += chunkLength
        frameRemaining -= chunkLength
        let bytes = UnsafeRawBufferPointer(chunk)

        if frame.opcode.isControl {
            if wholeFrameInInput {
                try deliverControl(bytes, onEvent)
                return true
            }
            control.append(bytes, finalCount: frame.payloadLength, limit: 125)
            guard frameRemaining == 0 else { return false }
            try deliverControl(control.bytes, onEvent)
            control.release()
            return true
        }

        let opcode = messageOpcode!  // set by `begin` or by the first fragment
        if messageCompressed {
            return try readCompressed(bytes, wholeFrameInInput: wholeFrameInInput, opcode: opcode, inflater: inflater, onEvent)
        }
        // Fail fast: validate text as it arrives, not when the message ends.
        if opcode == .text && !utf8.validate(bytes) { throw .invalidUTF8Text }

        if wholeFrameInInput && frame.fin && frame.opcode != .continuation {
            // Zero copy: the payload is delivered where it lies in the input.
            if opcode == .text && !utf8.isComplete { throw .invalidUTF8Text }
            let location = frameStart.map { WebSocketPayloadLocation.input(frameStart: $0, payloadOffset: payloadOffset) }
            messageOpcode = nil
            onEvent(.message(opcode: opcode, payload: bytes, location: location ?? .assembled))
            return true
        }

        let finalCount = frame.fin ? message.count + chunkLength + frameRemaining : nil
        message.append(bytes, finalCount: finalCount, limit: maxMessageSize)
        guard frameRemaining == 0 else { return false }
        if frame.fin {
            if opcode == .text && !utf8.isComplete { throw .invalidUTF8Text }
            messageOpcode = nil
            onEvent(.message(opcode: opcode, payload: message.bytes, location: .assembled))
            message.release()
        }
        return true
    }

    /// A compressed message's payload: gathered like any fragmented one,
    /// then inflated (bounded by the limit), validated if text, delivered.
    private mutating func readCompressed(
        _ bytes: UnsafeRawBufferPointer, wholeFrameInInput: Bool, opcode: WebSocketOpcode,
        inflater: PerMessageDeflateCodec?, _ onEvent: (WebSocketEvent) -> Void
    ) throws(WebSocketDecodeFailure) -> Bool {
        guard let inflater else { throw .reservedBitsSet }
        if wholeFrameInInput && frame.fin && frame.opcode != .continuation {
            try inflate(bytes, opcode: opcode, inflater, onEvent)
            return true
        }
        let finalCount = frame.fin ? message.count + bytes.count + frameRemaining : nil
        message.append(bytes, finalCount: finalCount, limit: maxMessageSize)
        guard frameRemaining == 0 else { return false }
        if frame.fin {
            try inflate(message.bytes, opcode: opcode, inflater, onEvent)
            message.release()
        }
        return true
    }

    private mutating func inflate(
        _ compressedBytes: UnsafeRawBufferPointer, opcode: WebSocketOpcode,
        _ inflater: PerMessageDeflateCodec, _ onEvent: (WebSocketEvent) -> Void
    ) throws(WebSocketDecodeFailure) {
        var invalidText = false
        let failure = inflater.inflate(compressedBytes, limit: maxMessageSize) { payload in
            if opcode == .text {
                var validator = UTF8Validator()
                guard validator.validate(payload), validator.isComplete else {
                    invalidText = true
                    return
                }
            }
            messageOpcode = nil
            messageCompressed = false
            onEvent(.message(opcode: opcode, payload: payload, location: .assembled))
        }
        switch failure {
        case .tooLarge?: throw .messageTooBig
        case .invalid?: throw .invalidCompressedData
        case nil: if invalidText { throw .invalidUTF8Text }
        }
    }

    private mutating func deliverControl(
        _ payload: UnsafeRawBufferPointer, _ onEvent: (WebSocketEvent) -> Void
    ) throws(WebSocketDecodeFailure) {
        switch frame.opcode {
        case .ping:
            onEvent(.ping(payload))
        case .pong:
            onEvent(.pong(payload))
        default:
            let (code, reason) = try Self.validateClosePayload(payload)
            phase = .closed
            message.release()
            onEvent(.close(code: code, reason: reason))
        }
    }

    /// RFC 6455 §5.5.1 and §7.4: empty, or a valid 2-byte code then UTF-8.
    private static func validateClosePayload(
        _ payload: UnsafeRawBufferPointer
    ) throws(WebSocketDecodeFailure) -> (UInt16?, UnsafeRawBufferPointer) {
        if payload.isEmpty { return (nil, payload) }
        guard payload.count >= 2 else { throw .closePayloadOneByte }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard WebSocketCloseCode.isValidOnWire(code) else { throw .invalidCloseCode }
        let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
        var validator = UTF8Validator()
        guard validator.validate(reason), validator.isComplete else { throw .invalidUTF8CloseReason }
        return (code, reason)
    }
}

// The decoder's heap storage is owned exclusively by it and, being
// noncopyable, it cannot be shared: moving it to another isolation domain is safe.
extension WebSocketDecoder: @unchecked Sendable {}
