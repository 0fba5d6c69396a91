import Reactor
import Synchronization

/// How far a link may run ahead of its mirror, shared by both loops: frame
/// bytes posted by the home and not yet applied by the mirror.
final class LinkCredit: Sendable {
    let inFlight = Atomic<Int>(0)
    /// Set by the home when it skipped frames for being over the bound;
    /// the mirror asks for a fresh state once it has caught up.
    let lagged = Atomic<Bool>(false)
}

/// The home side of a pod's link to its mirror on another loop: one
/// subscriber of the pod that stands for every browser of the pod on that
/// loop. Frames are copied once per link per frame into the link's own
/// slabs, and everything for the mirror leaves in one batch per loop turn
/// through the mirror's loop's mailbox (`LinkBatch`); there the mirror fans
/// them out with loop-local counts.
///
/// The bound: at most `bound` frame bytes in flight (posted and not yet
/// applied) before a frame, so at most `bound` + one frame, plus at most one
/// replay state. Past it, replayable frames and snapshots are skipped (notices
/// still go) and the link is lagged; when the mirror has caught up it asks
/// again, and gets the home's replay state anew, after which its browsers
/// catch up like lagged browsers (Snapshot + tail).
///
/// Loop-confined to the home's loop.
final class LoopLink: Flushable {
    unowned let pod: PodChannel
    /// Lives on `target`; this side only hands it batches.
    let mirror: PodMirror
    unowned let target: EventLoop
    let credit: LinkCredit
    let bound: Int
    /// The mirror's browsers the home accepted: id → can write.
    var browsers: [UInt32: Bool] = [:]

    private var items: [LinkItem] = []
    private var slabs: [Slab] = []
    private var pendingBytes = 0
    private var scheduled = false

    /// Largest frame copied into a shared chunk; bigger ones get a slab.
    static let chunkSize = 64 * 1024

    init(pod: PodChannel, mirror: PodMirror, target: EventLoop, bound: Int) {
        self.pod = pod
        self.mirror = mirror
        self.target = target
        self.bound = bound
        credit = mirror.credit
    }

    var writers: Int { browsers.values.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// A frame for the mirror (copied into this batch).
    func frame(_ f: SlabSlice, type: UInt8, kind: MessageKind, seq: UInt64, extendedOnly: Bool = false) {
        if kind != .other {
            if credit.lagged.load(ordering: .relaxed) { return }
            // Bytes ahead of this frame; one frame always goes on an empty
            // link, however large (the bound is on what waits, as for a
            // browser's queue).
            let ahead = credit.inFlight.load(ordering: .relaxed) &+ pendingBytes
            if ahead > 0 && ahead &+ f.count > bound {
                credit.lagged.store(true, ordering: .relaxed)
                pod.counters.add(pod.counters.lags, 1)
                send(.lagged)
                return
            }
        }
        items.append(.frame(copy(f), type: type, kind: kind, seq: seq, extendedOnly: extendedOnly))
        pendingBytes &+= f.count
        schedule()
    }

    func send(_ item: LinkItem) {
        items.append(item)
        schedule()
    }

    /// A copy of the home's replay state, first in the next batch's order.
    func sendState(_ replay: borrowing PodReplay, runnerPresent: Bool, runnerPaired: Bool, inputPaused: Bool) {
        var ring: [(UInt64, SlabSlice)] = []
        replay.ring.forEach(after: 0) { ring.append(($0.seq, copy($0.frame))) }
        let state = LinkState(
            epoch: replay.epoch, lastSeq: replay.lastSeq, snapshotAfterSeq: replay.snapshotAfterSeq,
            snapshot: replay.snapshot.map(copy), acpSnapshot: replay.acpSnapshot.map(copy), ring: ring,
            runnerPresent: runnerPresent, runnerPaired: runnerPaired, inputPaused: inputPaused)
        // Not counted in flight: a state is at most a ring and two
        // snapshots, and counting it would lag the link it is meant to mend.
        send(.state(state))
    }

    private func copy(_ f: SlabSlice) -> SlabSlice {
        let slab: Slab
        if f.count > Self.chunkSize / 4 {
            slab = Slab.allocate(capacity: f.count)
            slabs.append(slab)
        } else {
            if let last = slabs.last, last.capacity - last.used >= f.count, last.capacity == Self.chunkSize {
                slab = last
            } else {
                slab = Slab.allocate(capacity: Self.chunkSize)
                slabs.append(slab)
            }
        }
        let start = slab.base + slab.used
        if f.count > 0 { start.copyMemory(from: f.start, byteCount: f.count) }
        slab.used += f.count
        return SlabSlice(slab: Unmanaged.passUnretained(slab), start: UnsafeRawPointer(start), count: f.count)
    }

    private func schedule() {
        if !scheduled {
            scheduled = true
            pod.loop.scheduleFlush(self)
        }
    }

    /// End of the home's turn: the batch leaves for the mirror's loop.
    func flushQueued() {
        scheduled = false
        guard !items.isEmpty else { return }
        let batch = LinkBatch(items: items, slabs: slabs, bytes: pendingBytes)
        items = []
        slabs = []
        credit.inFlight.add(pendingBytes, ordering: .relaxed)
        pendingBytes = 0
        let mirror = self.mirror
        let posted = target.execute { mirror.apply(batch) }
        if !posted { batch.release() }      // the loop has stopped; nobody else has them
    }

    /// The pod let go of this link: what was not sent is dropped.
    func close() {
        items.removeAll()
        for s in slabs { s.release() }
        slabs.removeAll()
        pendingBytes = 0
    }
}
