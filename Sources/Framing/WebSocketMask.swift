/// XORs `buffer` in place with the masking key (RFC 6455 §5.3). Masking and
/// unmasking are the same operation.
///
/// - Parameters:
///   - key: the four key bytes in wire order, read as a big-endian number:
///     the key `37 fa 21 3d` on the wire is `0x37fa_213d`.
///   - phase: how many payload bytes (mod 4) were already processed, i.e. the
///     index of the key byte that applies to the first byte of `buffer`.
/// - Returns: the phase for the bytes that follow `buffer` (0...3).
public func webSocketUnmask(_ buffer: UnsafeMutableRawBufferPointer, key: UInt32, phase: Int) -> Int {
    let count = buffer.count
    guard count > 0, let base = buffer.baseAddress else { return phase & 3 }

    // Rotate so that the key byte for `phase` comes first, then lay the key
    // out in memory order twice to XOR 8 bytes at a time.
    let shift = UInt32(phase & 3) &* 8
    let rotated = shift == 0 ? key : (key << shift) | (key >> (32 &- shift))
    let memoryOrder = rotated.bigEndian
    let wideKey = UInt64(memoryOrder) | UInt64(memoryOrder) << 32

    var index = 0
    while index &+ 8 <= count {
        let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        base.storeBytes(of: word ^ wideKey, toByteOffset: index, as: UInt64.self)
        index &+= 8
    }
    // 8 is a multiple of 4, so the tail starts at key byte `phase` again.
    var tailKey = rotated
    while index < count {
        let byte = base.load(fromByteOffset: index, as: UInt8.self)
        base.storeBytes(of: byte ^ UInt8(truncatingIfNeeded: tailKey >> 24), toByteOffset: index, as: UInt8.self)
        tailKey = (tailKey << 8) | (tailKey >> 24)
        index &+= 1
    }
    return (phase &+ count) & 3
}
