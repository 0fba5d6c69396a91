import Reactor

/// Liveness for every WebSocket of one loop (docs/protocol.md §10, Liveness): one
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
    private var members: [Unmanaged<WebSocketConnection>] = []
    private var timer: LoopTimer?

    init(loop: EventLoop, interval: UInt64, closeTimeout: UInt64) {
        self.loop = loop
        self.interval = interval
        self.closeTimeout = closeTimeout
    }

    func add(_ ws: WebSocketConnection) {
        ws.livenessIndex = Int32(members.count)
        members.append(Unmanaged.passUnretained(ws))
        if timer == nil { timer = loop.schedule(afterNanoseconds: interval) { [unowned self] in sweep() } }
    }

    func remove(_ ws: WebSocketConnection) {
        let i = Int(ws.livenessIndex)
        guard i >= 0, i < members.count, members[i].toOpaque() == Unmanaged.passUnretained(ws).toOpaque() else { return }
        let last = members.removeLast()
        if i < members.count {
            members[i] = last
            last.takeUnretainedValue().livenessIndex = Int32(i)
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
            if i < members.count { members[i].takeUnretainedValue().close(code: code, reason: reason) }
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
            if i < members.count { members[i].takeUnretainedValue().checkLiveness(now: now, interval: interval) }
            i -= 1
        }
        if !members.isEmpty { timer = loop.schedule(afterNanoseconds: interval) { [unowned self] in sweep() } }
    }
}
