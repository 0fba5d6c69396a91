import Reactor

/// What a pod's home sends a mirror of the pod on another loop, in order,
/// in batches (`LinkBatch`). Slices point into the batch's slabs.
enum LinkItem {
    /// Start over from the home's replay state (a new link, or one that
    /// fell behind and skipped frames).
    case state(LinkState)
    /// A frame for the mirror's browsers (and its replay state).
    case frame(SlabSlice, type: UInt8, kind: MessageKind, seq: UInt64, extendedOnly: Bool)
    /// The home took browser `id` in (within the browser limit) or refused it.
    case accepted(UInt32)
    case refused(UInt32, code: UInt16, reason: String)
    /// The runner is connected (`present`) or away; `paired`: one has been here.
    case runner(present: Bool, paired: Bool)
    /// The runner's queue is full (or drained): stop (resume) reading the browsers.
    case pauseInput
    case resumeInput
    /// Browser `id`'s input was refused (runner away, held input full).
    case inputRefused(UInt32)
    /// The pod ended: close every browser with this code.
    case end(code: UInt16, reason: String)
    /// The home just lagged the link: nothing to do but be a batch that
    /// arrives after the flag was set, so the mirror's check for having
    /// caught up runs (else a link that lagged with nothing in flight
    /// would wait for a batch that never comes).
    case lagged
}

/// The home's replay state, copied for a mirror.
struct LinkState {
    let epoch: UInt32
    let lastSeq: UInt64
    let snapshotAfterSeq: UInt64
    let snapshot: SlabSlice?
    let acpSnapshot: SlabSlice?
    let ring: [(seq: UInt64, frame: SlabSlice)]
    let runnerPresent: Bool
    let runnerPaired: Bool
    let inputPaused: Bool
}

/// One turn's items from a home to a mirror, handed over through the
/// mirror's loop's mailbox.
///
/// Ownership: `slabs` were allocated and filled on the home's loop, which
/// gives up its counted references with the batch and never touches them
/// again; from then on only the mirror's loop counts them (loop-local
/// counts, no atomics), and it releases these references once it has taken
/// what it keeps.
final class LinkBatch: @unchecked Sendable {
    let items: [LinkItem]
    let slabs: [Slab]
    /// Frame bytes, for the link's in-flight bound.
    let bytes: Int

    init(items: [LinkItem], slabs: [Slab], bytes: Int) {
        self.items = items
        self.slabs = slabs
        self.bytes = bytes
    }

    /// Mirror's loop: drops the home's references once applied.
    func release() {
        for s in slabs { s.release() }
    }
}
