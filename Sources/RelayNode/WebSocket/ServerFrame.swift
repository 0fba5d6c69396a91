import Reactor
import Framing

/// Server-to-client WebSocket frames built once and queued by reference.
///
/// A server frame is unmasked, so its bytes are the same for every
/// subscriber: header + payload are laid out contiguously in one slab and
/// the same slice is queued to N connections (zero copies per extra
/// subscriber).
enum ServerFrame {
    /// Re-encodes a received client frame in place: the client header is at
    /// least 4 bytes longer than a server header for the same length (the
    /// mask key), so the server header is written just before the payload
    /// and the frame is a slice of the read slab. Uncounted: retain to keep.
    static func inPlace(_ frame: ReceivedFrame, opcode: WebSocketOpcode) -> SlabSlice {
        let headerSize = WebSocketEncoder.serverHeaderSize(payloadLength: frame.payloadCount)
        precondition(headerSize <= frame.headerRoom, "no room for the server header")
        let headerStart = frame.payloadStart - headerSize
        WebSocketEncoder.writeServerHeader(opcode: opcode, payloadLength: frame.payloadCount,
                                           to: UnsafeMutableRawPointer(mutating: headerStart))
        return SlabSlice(slab: frame.slab, start: headerStart, count: headerSize + frame.payloadCount)
    }

    /// A new slab holding header + a copy of `payload` (one counted
    /// reference, the caller's: release it once queued).
    static func copy(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) -> Slab {
        let headerSize = WebSocketEncoder.serverHeaderSize(payloadLength: payload.count)
        let slab = Slab.allocate(capacity: headerSize + payload.count)
        WebSocketEncoder.writeServerHeader(opcode: opcode, payloadLength: payload.count, to: slab.base)
        if payload.count > 0 {
            (slab.base + headerSize).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        slab.used = headerSize + payload.count
        return slab
    }
}

/// A message that arrived as one whole frame inside the read slab: where
/// its payload is and how many header bytes precede it.
struct ReceivedFrame {
    let slab: Unmanaged<Slab>
    let payloadStart: UnsafeRawPointer
    let payloadCount: Int
    /// Bytes of the client's frame header just before the payload (free to overwrite).
    let headerRoom: Int

    var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: payloadStart, count: payloadCount) }
}
