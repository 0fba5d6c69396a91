/// Incremental UTF-8 validator (a hand-written DFA following the well-formed
/// byte sequence table, Unicode 15 §3.9 Table 3-7).
///
/// Rejects as soon as a byte makes the input impossible to complete:
/// overlong forms, surrogates (U+D800-DFFF), scalars above U+10FFFF, stray
/// continuation bytes and lead bytes that are never valid (C0, C1, F5-FF).
/// A sequence cut at the end of a chunk is not an error; `isComplete` tells
/// whether the input so far ends on a code point boundary.
public struct UTF8Validator: Sendable {
    /// What the next byte must be. The values are private to this file.
    private var state: UInt8 = Self.accept

    private static let accept: UInt8 = 0
    private static let needOne: UInt8 = 1      // 80-BF, then done
    private static let needTwo: UInt8 = 2      // 80-BF, then needOne
    private static let needThree: UInt8 = 3    // 80-BF, then needTwo
    private static let afterE0: UInt8 = 4      // A0-BF (no overlong 3-byte forms)
    private static let afterED: UInt8 = 5      // 80-9F (no surrogates)
    private static let afterF0: UInt8 = 6      // 90-BF (no overlong 4-byte forms)
    private static let afterF4: UInt8 = 7      // 80-8F (nothing above U+10FFFF)
    private static let reject: UInt8 = 8       // sticky

    public init() {}

    /// True when the bytes validated so far end on a code point boundary.
    public var isComplete: Bool { state == Self.accept }

    /// Forgets everything, including a previous rejection.
    public mutating func reset() { state = Self.accept }

    /// Validates the next chunk. Returns false as soon as an invalid sequence
    /// is seen; once false, every later call returns false until `reset()`.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard state != Self.reject else { return false }
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var current = state
        var index = 0
        while index < count {
            if current == Self.accept {
                // ASCII fast path: skip 8 bytes at a time while no high bit is set.
                while index &+ 8 <= count,
                      base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    index &+= 8
                }
                if index == count { break }
            }
            current = Self.transition(from: current, on: base.load(fromByteOffset: index, as: UInt8.self))
            if current == Self.reject {
                state = Self.reject
                return false
            }
            index &+= 1
        }
        state = current
        return true
    }

    @inline(__always)
    private static func transition(from state: UInt8, on byte: UInt8) -> UInt8 {
        switch state {
        case accept:
            switch byte {
            case 0x00...0x7F: return accept
            case 0xC2...0xDF: return needOne
            case 0xE0: return afterE0
            case 0xED: return afterED
            case 0xE1...0xEF: return needTwo
            case 0xF0: return afterF0
            case 0xF1...0xF3: return needThree
            case 0xF4: return afterF4
            default: return reject  // 80-BF stray continuation, C0/C1 overlong, F5-FF
            }
        case needOne: return isContinuation(byte) ? accept : reject
        case needTwo: return isContinuation(byte) ? needOne : reject
        case needThree: return isContinuation(byte) ? needTwo : reject
        case afterE0: return (0xA0...0xBF).contains(byte) ? needOne : reject
        case afterED: return (0x80...0x9F).contains(byte) ? needOne : reject
        case afterF0: return (0x90...0xBF).contains(byte) ? needTwo : reject
        case afterF4: return (0x80...0x8F).contains(byte) ? needTwo : reject
        default: return reject
        }
    }

    @inline(__always)
    private static func isContinuation(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }
}
