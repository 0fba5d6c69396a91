import Framing

/// Where a browser belongs on its own loop: the pod itself when the browser
/// is on the pod's home loop (`PodChannel`), or the pod's mirror on the
/// browser's loop (`PodMirror`). Calls come on that loop.
protocol BrowserHost: AnyObject {
    var key: String { get }
    /// The hub of the browser's loop (its counters, settings, log).
    var hub: PodHub { get }
    func browserJoined(_ b: BrowserSession)
    func browserLeft(_ b: BrowserSession)
    func browserSent(_ b: BrowserSession, _ message: ReceivedMessage)
    /// Snapshot + tail for a browser that lagged.
    func catchUp(_ b: BrowserSession)
}

extension BrowserSession {
    /// A viewer's refused types (docs/protocol.md §9): Input, Resize, Resync, AcpCommand.
    func refuses(_ type: UInt8) -> Bool {
        guard !canWrite, let t = RelayFrameType(rawValue: type) else { return false }
        return t == .input || t == .resize || t == .resync || t == .acpCommand
    }
}
