import Reactor

/// The browsers of a pod on one loop (the home's, or a mirror's), and the
/// fan-out to them. `all` owns them; `fanout` is the same list unmanaged,
/// for the per-frame loop (no reference counting per subscriber).
struct Subscribers {
    private(set) var all: [BrowserSession] = []
    private var fanout: [Unmanaged<BrowserSession>] = []

    var count: Int { all.count }
    var isEmpty: Bool { all.isEmpty }
    var writers: Int { all.reduce(0) { $0 + ($1.canWrite ? 1 : 0) } }

    mutating func add(_ b: BrowserSession) {
        all.append(b)
        fanout.append(Unmanaged.passUnretained(b))
    }

    /// Removes `b`; false if it was not here.
    @discardableResult
    mutating func remove(_ b: BrowserSession) -> Bool {
        guard let i = all.firstIndex(where: { $0 === b }) else { return false }
        all.remove(at: i)
        fanout.remove(at: i)
        return true
    }

    /// Empties the list, returning who was in it.
    mutating func removeAll() -> [BrowserSession] {
        defer {
            all.removeAll()
            fanout.removeAll()
        }
        return all
    }

    /// Hot path: one frame, or a run of `frames` frames laid end to end, to
    /// every browser. Returns how many browsers took it.
    @inline(__always)
    func deliver(_ frame: SlabSlice, kind: MessageKind, frames: UInt32 = 1) -> Int {
        var delivered = 0
        for b in fanout {
            if b._withUnsafeGuaranteedRef({ $0.deliver(frame, kind: kind, frames: frames) }) { delivered &+= 1 }
        }
        return delivered
    }

    /// A relay-made frame to every browser (or only the extended ones),
    /// past the bound.
    func broadcast(_ frame: SlabSlice, extendedOnly: Bool) {
        for b in all where b.ext || !extendedOnly { b.deliverForced(frame, kind: .other) }
    }
}
