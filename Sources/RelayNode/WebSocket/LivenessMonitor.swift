import Reactor

/// What the liveness monitor pings and drains: a WebSocket over TCP, or an
/// HTTP/2 connection (one PING for all its streams).
protocol LivenessMember: AnyObject {
    /// Position in the monitor (-1: not in it); the monitor's to write.
    var livenessIndex: Int32 { get set }
    func checkLiveness(now: UInt64, interval: UInt64)
    /// Drain: a WebSocket's Close, an HTTP/2 connection's GOAWAY.
    func close(code: UInt16, reason: String)
}

/// Liveness for every WebSocket (and HTTP/2 connection) of one loop (docs/protocol.md §10, Liveness): one
/// timer per loop instead of one per connection (a timer and its closure
/// would cost an idle connection ~130 bytes). Every interval it pings each
/// open connection and drops one that has sent nothing for two intervals.
/// Loop-confined.
final class LivenessMonitor: @unchecked Sendable {
    unowned let loop: EventLoop
    let interval: UInt64
    /// How long a WebSocket of this loop waits for the peer's Close after sending ours.
    let closeTimeout: UInt64
    /// The connections own themselves (through their TCP connection); each
    /// removes itself when it closes, so these references never dangle.
    private var members: [Member] = []

    private struct Member {
        unowned(unsafe) let object: any LivenessMember
    }
    private var timer: LoopTimer?

    init(loop: EventLoop, interval: UInt64, closeTimeout: UInt64) {
        self.loop = loop
        self.interval = interval
        self.closeTimeout = closeTimeout
    }

    func add(_ ws: any LivenessMember) {
        ws.livenessIndex = Int32(members.count)
        members.append(Member(object: ws))
        if timer == nil { timer = loop.schedule(afterNanoseconds: interval) { [unowned self] in sweep() } }
    }

    func remove(_ ws: any LivenessMember) {
        let i = Int(ws.livenessIndex)
        guard i >= 0, i < members.count, members[i].object === ws else { return }
        let last = members.removeLast()
        if i < members.count {
            members[i] = last
            last.object.livenessIndex = Int32(i)
        }
        ws.livenessIndex = -1
        if members.isEmpty {
            timer?.cancel()
            timer = nil
        }
    }

    /// Starts the close handshake on every open WebSocket of this loop.
    func closeAll(code: UInt16, reason: String) {
        var i = members.count - 1
        while i >= 0 {
            if i < members.count { members[i].object.close(code: code, reason: reason) }
            i -= 1
        }
    }

    private func sweep() {
        timer = nil
        let now = loop.now()
        // Backwards: a connection that closes here swap-removes itself, and
        // what moves into its slot has already been visited.
        var i = members.count - 1
        while i >= 0 {
            if i < members.count { members[i].object.checkLiveness(now: now, interval: interval) }
            i -= 1
        }
        if !members.isEmpty { timer = loop.schedule(afterNanoseconds: interval) { [unowned self] in sweep() } }
    }
}
