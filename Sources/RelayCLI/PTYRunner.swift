import Glibc
import Logging
import CPTY
import Reactor
import Framing
import RelayClient

/// `relay attach`: runs a command on a pseudo-terminal and acts as the pod's
/// runner. PTY output goes up as Output (0x02); Input (0x03) goes into the
/// PTY; Resize (0x04) sets the window size; Resync (0x0A) is answered with a
/// Snapshot holding the recent output. Reconnects with jittered backoff
/// (0.5 s doubling to 30 s) and exits with the command's status.
final class PTYRunner: WebSocketClientDelegate, ConnectionHandler {
    let loop: EventLoop
    let group: EventLoopGroup
    let base: WebSocketURL
    let podKey: String
    let tokenSource: () -> String
    let logger: Logger
    private var client: WebSocketClient?
    private var pty: TCPConnection?
    private var pid: pid_t = 0
    private var cols: UInt16 = 80
    private var rows: UInt16 = 24
    /// The last `recentLimit` bytes of output, for snapshots.
    private var recent: [UInt8] = []
    static let recentLimit = 64 * 1024
    private var backoff: UInt64 = 500_000_000
    /// When the current connection attempt started (for the handshake deadline).
    private var connectStarted: UInt64 = 0
    /// Nothing read from the relay for this long (it pings every 25 s by
    /// default) means it is gone even if TCP does not say so.
    var silenceLimit: UInt64 = 60_000_000_000
    static let handshakeDeadline: UInt64 = 10_000_000_000
    private var exiting = false
    private(set) var exitStatus: Int32 = 0

    /// Client context for wss:// (nil for ws://).
    let tls: TLSContext?

    /// permessage-deflate offered (nil: not).
    let compression: PerMessageDeflateCodec?

    init(group: EventLoopGroup, base: WebSocketURL, tls: TLSContext? = nil, compression: PerMessageDeflateCodec? = nil,
         podKey: String, logger: Logger, token: @escaping () -> String) {
        self.compression = compression
        self.tls = tls
        self.group = group
        loop = group.loops[0]
        self.base = base
        self.podKey = podKey
        self.logger = logger
        tokenSource = token
    }

    /// Loop thread: starts the command and the first connection.
    func start(argv: [String]) throws {
        var master: Int32 = -1
        var cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        pid = cpty_spawn(&cargs, cols, rows, &master)
        if pid < 0 { throw SystemError("forkpty/exec \(argv.joined(separator: " "))") }
        let c = try TCPConnection.adopt(fd: master, on: loop)
        c.handler = self
        pty = c
        logger.notice("command started", metadata: ["pid": "\(pid)", "command": "\(argv.joined(separator: " "))"])
        connect()
        watchConnection()
    }

    private func connect() {
        guard !exiting else { return }
        connectStarted = MonotonicClock.now()
        let target = "/runner/relay?token=\(tokenSource())"
        do {
            client = try WebSocketClient.connect(to: base.with(target: target), on: loop, delegate: self, tls: tls,
                                                 compression: compression)
        } catch {
            logger.warning("connect failed", metadata: ["error": "\(error)"])
            scheduleReconnect()
        }
    }

    /// Every 5 s: a connection stuck in its handshake, or silent past the
    /// limit (a dead relay host behind a live-looking TCP connection), is
    /// dropped, which schedules a reconnect.
    private func watchConnection() {
        loop.schedule(afterNanoseconds: 5_000_000_000) { [weak self] in
            guard let self, !exiting else { return }
            let now = MonotonicClock.now()
            if let c = client {
                let stuck = !c.isOpen && now &- connectStarted > Self.handshakeDeadline
                let silent = c.isOpen && now &- c.lastReadNanos > silenceLimit
                if stuck || silent {
                    logger.warning(stuck ? "handshake timed out" : "relay silent, reconnecting")
                    c.connection.close()
                }
            }
            watchConnection()
        }
    }

    private func scheduleReconnect() {
        guard !exiting else { return }
        let jitter = UInt64.random(in: 0...(backoff / 2))
        let delay = backoff / 2 + jitter
        backoff = min(backoff * 2, 30_000_000_000)
        loop.schedule(afterNanoseconds: delay) { [weak self] in self?.connect() }
    }

    // MARK: Relay side

    func clientOpened(_ client: WebSocketClient) {
        backoff = 500_000_000
        logger.notice("attached", metadata: ["relay": "\(base)", "pod": "\(podKey)"])
    }

    func client(_ client: WebSocketClient, received opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer) {
        guard payload.count > 0 else { return }
        let body = UnsafeRawBufferPointer(rebasing: payload[1...])
        switch RelayFrameType(rawValue: payload[0]) {
        case .input?:
            // Bounded: when the command does not read its input, stop reading
            // from the relay (TCP backpressure) until the PTY drains.
            if let pty, !pty.enqueue(copying: body, force: false) {
                pty.enqueue(copying: body, force: true)
                client.connection.pauseReading()
            }
        case .resize?:
            if let size = RelayEnvelope.parseResize(body), size.cols > 0, size.rows > 0 {
                cols = size.cols
                rows = size.rows
                if let fd = pty?.fd { _ = cpty_resize(fd, cols, rows) }
            }
        case .resync?:
            sendSnapshot()
        case .ping?:
            client.send(bytes: [RelayFrameType.pong.rawValue])
        default:
            break
        }
    }

    func clientDrained(_ client: WebSocketClient) { pty?.resumeReading() }

    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?) {
        if self.client === client { self.client = nil }
        logger.warning("relay connection closed", metadata: ["code": "\(code.map(String.init) ?? "-")", "error": "\(error ?? "-")"])
        pty?.resumeReading()
        scheduleReconnect()
    }

    private func sendSnapshot() {
        var w = JSONWriter()
        w.beginObject()
        w.key("cols"); w.integer(Int64(cols))
        w.key("rows"); w.integer(Int64(rows))
        w.key("lines"); w.beginArray(); w.endArray()
        w.key("serialized_content"); w.string(String(decoding: recent, as: UTF8.self))
        w.key("cursor_x"); w.integer(0)
        w.key("cursor_y"); w.integer(0)
        w.key("cursor_visible"); w.bool(true)
        w.key("is_alt_screen"); w.bool(false)
        w.endObject()
        client?.send(bytes: [RelayFrameType.snapshot.rawValue] + w.bytes, force: true)
    }

    // MARK: PTY side

    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        recent += bytes.bytes
        if recent.count > Self.recentLimit {
            // Keep whole lines where possible, so a snapshot starts cleanly.
            var cut = recent.count - Self.recentLimit
            if let nl = recent[cut...].firstIndex(of: 10), nl - cut < 4096 { cut = nl + 1 }
            recent.removeFirst(cut)
        }
        guard let client, client.isOpen else { return }
        var frame = [RelayFrameType.output.rawValue]
        frame += bytes.bytes
        if !client.send(bytes: frame) {
            client.send(bytes: frame, force: true)
            c.pauseReading()            // resumes when the relay drains
        }
    }

    func connectionReadEOF(_ c: TCPConnection) { c.close() }

    func connectionDrained(_ c: TCPConnection) { client?.connection.resumeReading() }

    func connectionClosed(_ c: TCPConnection, error: SystemError?) {
        // EIO on the master: the command has exited.
        pty = nil
        exiting = true
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        logger.notice("command exited", metadata: ["status": "\(exitStatus)"])
        client?.close(code: WebSocketCloseCode.normal, reason: "command exited")
        loop.schedule(afterNanoseconds: 200_000_000) { [group] in group.stop() }
    }

    /// Stops the command (SIGHUP, as a closing terminal would).
    func hangUp() {
        if pid > 0 { kill(pid, SIGHUP) }
    }
}
