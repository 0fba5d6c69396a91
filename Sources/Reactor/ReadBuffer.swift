/// The loop's read buffer, borrowed by whichever connection is reading, so an
/// idle connection holds none.
///
/// Reads land in the free tail of the current slab. A handler that keeps
/// some of the bytes retains their slice (zero copy); if nobody did, the slab
/// is rewound after the read and reused. A slab whose tail is too short is
/// let go (it lives on while slices point into it) and a fresh one taken.
public final class ReadBuffer {
    public let slabSize: Int
    /// Fewer free bytes than this and a fresh slab is taken.
    public let minimumFree: Int
    private var current: Slab

    public init(slabSize: Int = 256 * 1024, minimumFree: Int = 32 * 1024) {
        self.slabSize = slabSize
        self.minimumFree = minimumFree
        current = Slab.allocate(capacity: slabSize)
    }

    deinit { current.release() }

    /// The slab reads go into now, with room for at least `minimumFree` bytes.
    @inline(__always)
    public func prepare() -> Slab {
        let slab = current
        if slab.refs == 1 {
            slab.used = 0            // nobody kept anything: rewind
        } else if slab.capacity - slab.used < minimumFree {
            slab.release()           // slices keep it alive as long as needed
            current = Slab.allocate(capacity: slabSize)
        }
        return current
    }
}
