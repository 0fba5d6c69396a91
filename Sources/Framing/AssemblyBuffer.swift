import Glibc

/// Heap bytes owned by the decoder only while a frame or message is
/// incomplete. `release()` returns to the no-allocation state, so an idle
/// connection holds no heap memory.
struct AssemblyBuffer: ~Copyable {
    private(set) var base: UnsafeMutableRawPointer? = nil
    private(set) var count = 0
    private(set) var capacity = 0

    /// First allocation size, unless the final size is known to be smaller.
    private static let minimumCapacity = 256

    init() {}

    deinit { free(base) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Appends `chunk`, growing geometrically but never beyond `limit`, nor
    /// beyond `finalCount` when the final size is already known.
    /// The caller guarantees `count + chunk.count` ≤ both bounds.
    mutating func append(_ chunk: UnsafeRawBufferPointer, finalCount: Int?, limit: Int) {
        let needed = count + chunk.count
        if needed > capacity {
            var newCapacity = max(needed, capacity * 2, Self.minimumCapacity)
            newCapacity = min(newCapacity, finalCount ?? limit, limit)
            newCapacity = max(newCapacity, needed)
            guard let grown = realloc(base, newCapacity) else { fatalError("out of memory") }
            base = grown
            capacity = newCapacity
        }
        if let source = chunk.baseAddress, chunk.count > 0 {
            base!.advanced(by: count).copyMemory(from: source, byteCount: chunk.count)
        }
        count = needed
    }

    mutating func release() {
        free(base)
        base = nil
        count = 0
        capacity = 0
    }
}
