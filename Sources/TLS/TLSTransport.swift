import Glibc
import COpenSSL
import CTLS
import Reactor

/// TLS over a nonblocking socket, as a Reactor `Transport`.
///
/// Reading: OpenSSL reads the socket itself (a socket BIO, read-ahead on),
/// and decrypts into the caller's buffer, i.e. straight into the loop's read
/// slab. Records read ahead but not yet returned are `hasBufferedInput`.
///
/// Writing: `writev` gathers the queued slices into record-sized pieces
/// (a copy into a per-thread 16 KiB staging buffer, unless a slice alone
/// fills a record) and encrypts them through a BIO that never blocks, into
/// a per-thread buffer, `writeBudget` bytes at a time, each pass one
/// `send`, until the slices are done or the socket refuses. Whatever it
/// does not take is kept per connection (`hasPendingOutput`, at most one
/// pass: `writeBudget` plus record overhead) and goes first next time.
/// So SSL_write always consumes what it is given, and OpenSSL's rule that
/// a blocked write is retried with the same buffer never applies: the
/// outbound queue can drop or reorder what it has not handed over yet.
///
/// Kernel TLS would let `writev` of shared slices stay zero-copy; this
/// machine's kernel has no TLS module (see docs/architecture.md), so the
/// copy into records is the cost of encryption here.
public final class TLSTransport: Transport {
    public private(set) var fd: Int32
    /// Keeps the context (and its ALPN list) alive as long as the connection.
    public let context: TLSContext
    /// Where this connection is counted (nil: nowhere).
    public let counters: TLSCounters?
    /// Owned: freed in `close`.
    private var ssl: OpaquePointer?
    /// Owned, stable address (the output BIO points at it); its buffer is
    /// freed by `close`, the struct itself only in deinit, so a question
    /// asked after `close` (is output pending?) reads valid memory.
    private let out: UnsafeMutablePointer<ctls_out>
    /// Borrowed from `ssl` (which owns it after SSL_set_bio).
    private let rbio: OpaquePointer
    public private(set) var isHandshakeComplete = false
    /// FIN goes once the pending output (a close_notify) is sent.
    private var finAfterPending = false
    private var writeShut = false

    /// The most a peer may send before its handshake completes: a real
    /// ClientHello is a few KiB, a client certificate chain a few more.
    public static let maxHandshakeBytes = 32 * 1024
    /// Plaintext per TLS record written (the protocol's maximum).
    public static let recordSize = 16 * 1024
    /// Plaintext encrypted per pass (one `send` each): bounds the
    /// per-connection pending output to about this much when the socket
    /// is full.
    public static let writeBudget = 64 * 1024

    /// A transport for connected socket `fd`, which it owns from here on
    /// (closed by `close`). If this initializer throws, the caller still
    /// owns `fd` (and closes it: one owner, so the number is never closed
    /// twice while another thread may reuse it).
    /// `serverName`: a client's SNI and the name its certificate must carry.
    public init(fd: Int32, context: TLSContext, serverName: String? = nil, counters: TLSCounters? = nil) throws(SystemError) {
        self.fd = fd
        self.context = context
        self.counters = counters
        out = .allocate(capacity: 1)
        out.initialize(to: ctls_out(fd: fd, pending: nil, pending_len: 0, pending_off: 0, pending_cap: 0, failed: 0))
        guard let ssl = SSL_new(context.ctx) else {
            out.deallocate()
            throw SystemError("tls", code: ENOMEM, detail: "cannot create a TLS session: \(TLSContext.lastError())")
        }
        let madeRBIO = BIO_new_socket(fd, BIO_NOCLOSE)
        let madeWBIO = madeRBIO == nil ? nil : ctls_out_bio_new(out)
        guard let rbio = madeRBIO, let wbio = madeWBIO else {
            // Not handed to `ssl` yet: what was made is ours to free.
            if let madeRBIO { BIO_free(madeRBIO) }
            SSL_free(ssl)
            out.deallocate()
            throw SystemError("tls", code: ENOMEM, detail: "cannot create a TLS session")
        }
        SSL_set_bio(ssl, rbio, wbio)
        self.ssl = ssl
        counters?.open.add(1, ordering: .relaxed)
        self.rbio = rbio
        // Until the handshake completes the peer may send this much: a read
        // past it fails before OpenSSL sees the bytes (lifted once done).
        ctls_bio_limit_reads(rbio, Self.maxHandshakeBytes)
        switch context.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let serverName {
                let isIP = Self.isIPLiteral(serverName)
                // SNI carries host names only (RFC 6066 §3).
                if !isIP { _ = ctls_set_host_name(ssl, serverName) }
                if SSL_CTX_get_verify_mode(context.ctx) & SSL_VERIFY_PEER != 0 {
                    _ = ctls_set_verify_name(ssl, serverName, isIP ? 1 : 0)
                }
            }
        }
    }

    deinit {
        close()
        out.deallocate()
    }

    /// OpenSSL's error queue must be empty before an SSL call for
    /// SSL_get_error to be reliable. Clearing it costs ~800 instructions
    /// (it frees every slot); looking costs a few, and it is almost always
    /// empty already.
    @inline(__always)
    private func clearErrors() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

    static func isIPLiteral(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    // MARK: Handshake

    public func handshake() -> HandshakeStep {
        let step = handshakeStep()
        if let counters {
            switch step {
            case .done:
                if let ssl { counters.handshakeCompleted(version: String(cString: SSL_get_version(ssl)), resumed: SSL_session_reused(ssl) == 1) }
            case .failed(let e):
                counters.handshakeFailed(reason: Self.failureReason(e))
            case .wantRead, .wantWrite:
                break
            }
        }
        return step
    }

    /// The label a failed handshake is counted under.
    static func failureReason(_ e: SystemError) -> String {
        if e.code == ECONNRESET && e.detail != nil { return "peer_closed" }
        return e.detail ?? "socket_error"
    }

    private func handshakeStep() -> HandshakeStep {
        guard let ssl else { return .failed(SystemError("tls handshake", code: EBADF)) }
        clearErrors()
        let r = SSL_do_handshake(ssl)
        let handshakeErrno = errno   // before the flush's send can change it
        let err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r)
        let reason = err == SSL_ERROR_SSL ? String(cString: ctls_last_error_reason()) : ""
        // Send this flight (or the alert that ends a failed handshake).
        let sent = ctls_out_flush(out)
        if r == 1 {
            // Complete, even if sending what follows it (TLS 1.3 session
            // tickets) failed: a peer that left at once shows on the next
            // read or write, not as a failed handshake.
            isHandshakeComplete = true
            ctls_bio_limit_reads(rbio, 0)
            return .done
        }
        if BIO_number_read(rbio) >= UInt64(Self.maxHandshakeBytes) {
            return .failed(SystemError("tls handshake", code: EMSGSIZE, detail: "handshake too large"))
        }
        if sent < 0 { return .failed(SystemError("send", code: -sent)) }
        switch err {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            // Our flight must leave before the peer can answer it.
            return sent == 1 ? .wantWrite : .wantRead
        case SSL_ERROR_SSL:
            if reason == "http request", let answer = context.plainHTTPResponse {
                // Plain HTTP on the TLS port: OpenSSL read the request and
                // sent nothing; say in the clear what to use instead.
                _ = answer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            return .failed(SystemError("tls handshake", code: EPROTO, detail: reason.isEmpty ? "protocol error" : reason))
        case SSL_ERROR_SYSCALL where handshakeErrno != 0:
            return .failed(SystemError("tls handshake", code: handshakeErrno))
        default:
            return .failed(SystemError("tls handshake", code: ECONNRESET, detail: "peer closed the connection during the handshake"))
        }
    }

    public var summary: TransportSummary {
        guard let ssl, isHandshakeComplete else { return TransportSummary() }
        var s = TransportSummary()
        s.protocolVersion = String(cString: SSL_get_version(ssl))
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        if let p, n > 0 { s.applicationProtocol = String(decoding: UnsafeBufferPointer(start: p, count: Int(n)), as: UTF8.self) }
        var subject = [CChar](repeating: 0, count: 1024)
        if ctls_peer_subject(ssl, &subject, Int32(subject.count)) == 1 { s.peerSubject = subject.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } }
        s.resumed = SSL_session_reused(ssl) == 1
        return s
    }

    // MARK: Reading

    public var hasBufferedInput: Bool {
        guard let ssl else { return false }
        return SSL_has_pending(ssl) == 1
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        guard let ssl else { return .error(SystemError("read", code: EBADF)) }
        clearErrors()
        var n = 0
        let r = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        let readErrno = errno   // before the flush's send can change it
        let err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r)
        let reason = err == SSL_ERROR_SSL ? String(cString: ctls_last_error_reason()) : ""
        // Reading may have produced records of our own (an alert, the
        // answer to a key update): they leave now or stay pending.
        let sent = ctls_out_flush(out)
        if r == 1 { return .bytes(n) }
        switch err {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return sent < 0 ? .error(SystemError("send", code: -sent)) : .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            return .eof
        case SSL_ERROR_SYSCALL:
            return readErrno == 0 ? .eof : .error(SystemError("read", code: readErrno))
        default:
            return .error(SystemError("tls", code: EPROTO, detail: reason.isEmpty ? "protocol error" : reason))
        }
    }

    // MARK: Writing

    public var hasPendingOutput: Bool { ssl != nil && (out.pointee.pending_len > 0 || finAfterPending) }

    public func flushPending() -> IOResult {
        guard ssl != nil else { return .error(SystemError("send", code: EBADF)) }
        let f = ctls_out_flush(out)
        if f == 1 { return .wouldBlock }
        if f < 0 { return .error(SystemError("send", code: -f)) }
        if finAfterPending {
            finAfterPending = false
            _ = shutdown(fd, Int32(SHUT_WR))
        }
        return .bytes(0)
    }

    public func writev(_ iov: UnsafePointer<iovec>, count: Int32) -> IOResult {
        guard let ssl, !writeShut else { return .error(SystemError("writev", code: EPIPE)) }
        if out.pointee.pending_len > 0 {
            let f = ctls_out_flush(out)
            if f == 1 { return .wouldBlock }
            if f < 0 { return .error(SystemError("send", code: -f)) }
        }
        // Pass after pass of at most `writeBudget`, each sent before the
        // next is encrypted, while the socket takes everything: a short
        // count then means the socket is full, as for plain TCP, and what
        // it refused (kept in `out`) is at most one pass's records.
        var total = 0
        while true {
            clearErrors()
            var sslReturn: Int32 = 0
            let taken = ctls_write_gathered(ssl, iov, count, total, Self.recordSize, Self.writeBudget, &sslReturn)
            let reason = taken < 0 && SSL_get_error(ssl, sslReturn) == SSL_ERROR_SSL ? String(cString: ctls_last_error_reason()) : ""
            let f = ctls_out_flush(out)
            if taken < 0 {
                if total > 0 { return .bytes(total) }
                return .error(SystemError("tls write", code: EPROTO, detail: reason.isEmpty ? "write failed" : reason))
            }
            total += taken
            // The socket failed: what was encrypted is lost with it.
            if f < 0 { return .error(SystemError("send", code: -f)) }
            if f == 1 || taken < Self.writeBudget { return .bytes(total) }
        }
    }

    // MARK: Closing

    /// close_notify, then FIN once it has left (see `flushPending`).
    public func shutdownWrite() {
        guard let ssl, !writeShut else { return }
        writeShut = true
        if isHandshakeComplete {
            clearErrors()
            _ = SSL_shutdown(ssl)
            clearErrors()
        }
        finAfterPending = true
        _ = flushPending()
    }

    public func close() {
        if let ssl {
            counters?.open.add(-1, ordering: .relaxed)
            SSL_free(ssl)
            self.ssl = nil
            ctls_out_free(out)
            finAfterPending = false
        }
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }
}
