import Reactor
import Framing

/// What a pod keeps for browsers that join or fall behind (docs/protocol.md
/// §7): the epoch, the sequence number of the last replayable frame, the
/// replay ring, and the latest Snapshot and AcpSnapshot. The pod's home
/// keeps one; so does every mirror of the pod on another loop, fed with the
/// home's sequence numbers, so that attach, resume and catch-up are the same
/// wherever a browser lives. Loop-confined; frames are counted slices.
struct PodReplay: ~Copyable {
    /// Chosen by the home at creation; a resume from another epoch gets a Gap.
    private(set) var epoch: UInt32
    private(set) var lastSeq: UInt64 = 0
    private(set) var ring: ReplayRing
    /// Latest Snapshot / AcpSnapshot frames (counted), and the last sequence
    /// number delivered before that Snapshot arrived.
    private(set) var snapshot: SlabSlice?
    private(set) var snapshotAfterSeq: UInt64 = 0
    private(set) var acpSnapshot: SlabSlice?

    init(epoch: UInt32, ringBytes: Int) {
        self.epoch = epoch
        ring = ReplayRing(limit: ringBytes)
    }

    deinit {
        snapshot?.release()
        acpSnapshot?.release()
    }

    /// The kind of a runner frame of relay type `type`.
    static func kind(of type: UInt8) -> MessageKind {
        switch RelayFrameType(rawValue: type) {
        case .snapshot?, .acpSnapshot?: return .snapshot
        case let t? where t.isReplayable: return .replayable
        default: return .other
        }
    }

    /// Home: keeps a runner frame of relay type `type`; a replayable one gets
    /// the next sequence number. Returns its kind and seq (0 if none).
    mutating func record(_ frame: SlabSlice, type: UInt8) -> (kind: MessageKind, seq: UInt64) {
        let kind = Self.kind(of: type)
        let seq = kind == .replayable ? lastSeq &+ 1 : 0
        record(frame, type: type, kind: kind, seq: seq)
        return (kind, seq)
    }

    /// Mirror: keeps a frame the home recorded, with the home's seq.
    mutating func record(_ frame: SlabSlice, type: UInt8, kind: MessageKind, seq: UInt64) {
        switch kind {
        case .snapshot:
            frame.retain()
            if type == RelayFrameType.acpSnapshot.rawValue {
                acpSnapshot?.release()
                acpSnapshot = frame
            } else {
                snapshot?.release()
                snapshot = frame
                snapshotAfterSeq = lastSeq
            }
        case .replayable:
            lastSeq = seq
            ring.push(seq: seq, frame: frame)
        case .other, .position:
            break        // forwarded, not kept (docs/protocol.md §5: unknown types go on)
        }
    }

    /// Mirror: starts over from the home's state (its epoch and position;
    /// the snapshots and ring frames follow through `record`).
    mutating func reset(epoch: UInt32, lastSeq: UInt64, snapshotAfterSeq: UInt64) {
        removeAll()
        self.epoch = epoch
        self.lastSeq = lastSeq
        self.snapshotAfterSeq = snapshotAfterSeq
    }

    /// Mirror, after `reset`: the home's snapshot taken before `snapshotAfterSeq`.
    mutating func restoreSnapshot(_ frame: SlabSlice, type: UInt8) {
        let after = snapshotAfterSeq
        record(frame, type: type, kind: .snapshot, seq: 0)
        snapshotAfterSeq = after
    }

    /// Mirror, after `reset`: a ring frame of the home's, in order.
    mutating func restoreRingFrame(_ frame: SlabSlice, seq: UInt64) {
        ring.push(seq: seq, frame: frame)
    }

    mutating func removeAll() {
        snapshot?.release()
        snapshot = nil
        acpSnapshot?.release()
        acpSnapshot = nil
        ring.removeAll()
    }

    /// What a joining browser gets before live frames: exactly the frames
    /// after its resume point, or Snapshot(s) + tail (docs/protocol.md §7).
    /// Returns whether the runner should be asked for a fresh Snapshot.
    func attach(_ b: BrowserSession) -> Bool {
        if let r = b.resume, b.ext {
            let first = ring.firstSeq ?? (lastSeq &+ 1)
            if r.epoch == epoch && r.seq <= lastSeq && r.seq &+ 1 >= first {
                ring.forEach(after: r.seq) { b.deliverForced($0.frame, kind: .replayable) }
                b.sendExtension(RelayEnvelope.position(epoch: epoch, seq: lastSeq), kind: .position)
                return false
            }
            // From the client's next frame; a seq from the future (or another
            // epoch) counts as nothing held.
            let from = r.epoch == epoch && r.seq <= lastSeq ? r.seq &+ 1 : 1
            b.sendExtension(RelayEnvelope.gap(epoch: epoch, from: from, to: max(from, first) &- 1))
        }
        return catchUp(b)
    }

    /// Latest Snapshot + AcpSnapshot + every later frame in the ring (then
    /// Position for extended clients). Without a Snapshot the whole ring.
    /// Returns whether the runner should be asked for a fresh Snapshot: there
    /// is none, or the ring no longer holds the frames that followed it.
    func catchUp(_ b: BrowserSession) -> Bool {
        if let s = snapshot { b.deliverForced(s, kind: .snapshot) }
        if let a = acpSnapshot { b.deliverForced(a, kind: .snapshot) }
        ring.forEach(after: snapshot == nil ? 0 : snapshotAfterSeq) { b.deliverForced($0.frame, kind: .replayable) }
        let stale = snapshot != nil && (ring.firstSeq ?? lastSeq &+ 1) > snapshotAfterSeq &+ 1
        b.sendExtension(RelayEnvelope.position(epoch: epoch, seq: lastSeq), kind: .position)
        return snapshot == nil || stale
    }
}
