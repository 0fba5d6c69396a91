/// What a message stream carries messages for (a runner, a browser, the
/// echo test endpoint). Calls come on the stream's loop.
protocol MessageStreamEndpoint: AnyObject {
    /// The stream is open (for a WebSocket: the upgrade response is queued);
    /// messages may follow at once.
    func streamOpened(_ stream: MessageStream)
    /// A complete message; see `ReceivedMessage` for how long it is valid.
    func stream(_ stream: MessageStream, received message: ReceivedMessage)
    /// Every message of one read has been handed over (a pod fans out the
    /// frames of one read as one run per subscriber).
    func streamReadDone(_ stream: MessageStream)
    /// The outbound queue drained after a refused send (or `notifyWhenDrained`).
    func streamDrained(_ stream: MessageStream)
    /// The stream is gone; `code` is the close code seen or sent (1006 if none).
    func streamClosed(_ stream: MessageStream, code: UInt16)
}

extension MessageStreamEndpoint {
    func streamOpened(_ stream: MessageStream) {}
    func streamDrained(_ stream: MessageStream) {}
    func streamReadDone(_ stream: MessageStream) {}
}
