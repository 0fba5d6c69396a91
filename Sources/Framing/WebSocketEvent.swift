/// Where the payload of a delivered message lives.
public enum WebSocketPayloadLocation: Equatable, Sendable {
    /// The whole message was one frame lying entirely inside the buffer given
    /// to `feed`; offsets are into that buffer. `frameStart` is the offset of
    /// the frame's first header byte, `payloadOffset` the offset of the
    /// (already unmasked, in place) payload. The caller may keep these bytes
    /// (zero copy) and may overwrite the header bytes in
    /// [frameStart, payloadOffset) to re-encode a server header in place.
    case input(frameStart: Int, payloadOffset: Int)
    /// Not a whole frame of this input: the payload was assembled in the
    /// decoder's own storage (fragmented message, or a frame split across
    /// feeds), or, when only the header came in an earlier feed, it is the
    /// unmasked payload inside the input. Valid only during the callback.
    case assembled
}

/// What the decoder reports. Payload pointers are valid only during the
/// callback unless the location is `.input` (then they point into the
/// caller's own buffer).
public enum WebSocketEvent {
    /// A complete text or binary message; text is already validated as UTF-8.
    case message(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, location: WebSocketPayloadLocation)
    case ping(UnsafeRawBufferPointer)
    case pong(UnsafeRawBufferPointer)
    /// `code` is nil for an empty close payload; code and reason are validated.
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
}
