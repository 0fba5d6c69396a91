import Glibc
import Reactor
@testable import TLS
import CTLS
import COpenSSL

/// What one side of a test connection saw, readable from the test thread.
final class Observed: @unchecked Sendable {
    private let lock = Locked(())
    private var _summary: TransportSummary?
    private var _error: SystemError?
    private var _closed = false
    private var _received: [UInt8] = []
    private var _eof = false
    let closed = Flag()
    let established = Flag()

    func connected(_ c: TCPConnection) {
        lock.withLock { _ in _summary = c.transport.summary }
        established.set()
    }
    func read(_ bytes: SlabSlice) { lock.withLock { _ in _received += bytes.bytes } }
    func eof() { lock.withLock { _ in _eof = true } }
    func close(_ error: SystemError?) {
        lock.withLock { _ in _error = error; _closed = true }
        closed.set()
    }
    var summary: TransportSummary? { lock.withLock { _ in _summary } }
    var error: SystemError? { lock.withLock { _ in _error } }
    var received: [UInt8] { lock.withLock { _ in _received } }
    var sawEOF: Bool { lock.withLock { _ in _eof } }
}

/// Echoes, zero copy, pausing at the outbound bound (as a relay would).
final class EchoServer: ConnectionHandler, @unchecked Sendable {
    let seen: Observed
    init(_ seen: Observed) { self.seen = seen }
    func connectionConnected(_ c: TCPConnection) { seen.connected(c) }
    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        if !c.enqueue(bytes) {
            c.enqueue(bytes, force: true)
            c.pauseReading()
        }
    }
    func connectionDrained(_ c: TCPConnection) { c.resumeReading() }
    func connectionClosed(_ c: TCPConnection, error: SystemError?) { seen.close(error) }
}

/// Sends `payload` once connected, keeps what comes back; closes when all
/// of it has (if `expectEcho`).
final class Client: ConnectionHandler, @unchecked Sendable {
    let seen = Observed()
    let payload: [UInt8]
    let expectEcho: Bool
    private var got = 0
    init(payload: [UInt8] = [], expectEcho: Bool = true) {
        self.payload = payload
        self.expectEcho = expectEcho
    }
    func connectionConnected(_ c: TCPConnection) {
        seen.connected(c)
        // In pieces, so that several slices are gathered into records.
        var i = 0
        while i < payload.count {
            let n = min(1000 + i % 7919, payload.count - i)
            payload[i..<(i + n)].withUnsafeBytes { _ = c.enqueue(copying: $0) }
            i += n
        }
    }
    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        seen.read(bytes)
        got += bytes.count
        if expectEcho && got >= payload.count { c.close() }
    }
    func connectionReadEOF(_ c: TCPConnection) {
        seen.eof()
        c.close()
    }
    func connectionClosed(_ c: TCPConnection, error: SystemError?) { seen.close(error) }
}

/// Where two byte arrays first differ (nil: equal). Never compare large
/// arrays with `==` in an expectation: its failure message diffs them.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    for i in 0..<min(a.count, b.count) where a[i] != b[i] { return i }
    return a.count == b.count ? nil : min(a.count, b.count)
}

/// 4 KiB socket buffers, and small segments too, or a 4 KiB window below
/// loopback's 64 KiB MSS stalls on the kernel's zero-window probes.
@Sendable func tinyClientBuffers(_ fd: Int32) {
    Socket.setBufferSizes(fd, send: 4096, receive: 4096)
    Socket.setMaxSegment(fd, 1024)
}

func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 11)) } }

@Suite(.serialized) struct TLSTransportTests {
    let certs = TestCertificates.shared

    /// One connection that both sides see closed; returns what each saw.
    func connectOnce(server: TLSContext, client: TLSContext, serverName: String = "127.0.0.1") throws -> (client: Observed, server: Observed) {
        let serverSide = Observed()
        let c = Client(payload: Array("x".utf8))
        try withTLSPair(server: server, onAccept: { $0.handler = EchoServer(serverSide) }) { port, loop in
            connectTLS(port: port, on: loop, context: client, serverName: serverName, handler: c)
            #expect(c.seen.closed.wait())
            #expect(serverSide.closed.wait())
        }
        return (c.seen, serverSide)
    }

    /// Tiny socket buffers on both sides: encrypted records are refused
    /// part-way on almost every send, so pending output, read-ahead and
    /// the gathered writes are all exercised.
    @Test func eightMegabytesEchoByteForByteThroughTinySocketBuffers() throws {
        let server = try certs.server()
        let client = try TLSContext.client(caFile: certs.ca)
        let serverSide = Observed()
        let c = Client(payload: pattern(8 << 20))
        try withTLSPair(server: server, onAccept: { conn in
            Socket.setBufferSizes(conn.fd, send: 4096, receive: 4096)
            conn.outboundLimit = 64 * 1024
            conn.handler = EchoServer(serverSide)
        }) { port, loop in
            connectTLS(port: port, on: loop, context: client, handler: c, configure: tinyClientBuffers)
            #expect(c.seen.closed.wait(seconds: 120))
        }
        #expect(c.seen.error == nil)
        let got = c.seen.received
        #expect(got.count == c.payload.count)
        #expect(firstDifference(got, c.payload) == nil, "the echo differs from what was sent")
        #expect(c.seen.summary?.protocolVersion == "TLSv1.3")
    }

    @Test func alpnPicksTheServersFirstChoiceAmongTheClientsOffers() throws {
        for (serverList, clientList, expected) in [
            (["http/1.1"], ["h2", "http/1.1"], "http/1.1" as String?),
            (["h2", "http/1.1"], ["http/1.1", "h2"], "h2"),
            (["http/1.1"], ["h2"], nil),
        ] {
            let server = try certs.server(alpn: serverList)
            let client = try TLSContext.client(caFile: certs.ca, applicationProtocols: clientList)
            let serverSide = Observed()
            let c = Client(payload: Array("ping".utf8))
            try withTLSPair(server: server, onAccept: { $0.handler = EchoServer(serverSide) }) { port, loop in
                connectTLS(port: port, on: loop, context: client, handler: c)
                #expect(c.seen.closed.wait())
            }
            #expect(c.seen.received == Array("ping".utf8))
            #expect(c.seen.summary?.applicationProtocol == expected, "server \(serverList), client \(clientList)")
            #expect(serverSide.summary?.applicationProtocol == expected)
        }
    }

    @Test func theClientRefusesACertificateItCannotVerify() throws {
        let server = try certs.server()
        // The system's CAs do not know the test CA.
        let unknown = try connectOnce(server: server, client: try TLSContext.client())
        #expect(unknown.client.summary == nil, "never established")
        #expect(unknown.client.error?.detail == "certificate verify failed")
        // A name the certificate does not carry fails too, even from the right CA.
        let named = try connectOnce(server: server, client: try TLSContext.client(caFile: certs.ca), serverName: "relay.example.com")
        #expect(named.client.error?.detail == "certificate verify failed")
    }

    @Test func mutualTLSAcceptsOnlyCertificatesFromItsCA() throws {
        let server = try certs.server(clientCA: true)
        for (cert, key, accepted) in [(nil, nil, false), (certs.strangerCert, certs.strangerKey, false),
                                      (certs.clientCert, certs.clientKey, true)] as [(String?, String?, Bool)] {
            let client = try TLSContext.client(caFile: certs.ca, certificateFile: cert, keyFile: key)
            let serverSide = Observed()
            let c = Client(payload: Array("hello".utf8))
            try withTLSPair(server: server, onAccept: { $0.handler = EchoServer(serverSide) }) { port, loop in
                connectTLS(port: port, on: loop, context: client, handler: c)
                #expect(c.seen.closed.wait())
                if !accepted { #expect(serverSide.closed.wait()) }
            }
            if accepted {
                #expect(c.seen.received == Array("hello".utf8))
                #expect(serverSide.summary?.peerSubject == "/CN=runner-1/O=mesh")
            } else {
                #expect(c.seen.received.isEmpty, "cert \(cert ?? "none")")
                #expect(serverSide.summary == nil)
                #expect(serverSide.error?.detail != nil, "the server names why: \(String(describing: serverSide.error))")
            }
        }
    }

    @Test func aServerThatRequiresTLS13RefusesATLS12Client() throws {
        let server = try certs.server(minimumVersion: .v1_3)
        let client = try TLSContext.client(caFile: certs.ca)
        _ = ctls_ctx_set_max_proto(client.ctx, TLS1_2_VERSION)
        let seen = try connectOnce(server: server, client: client)
        #expect(seen.server.error?.detail == "unsupported protocol")
        #expect(seen.client.summary == nil)
    }

    /// The server queues a megabyte and closes gracefully at once: the
    /// client gets every byte, then a close_notify (EOF), never a reset.
    @Test func aGracefulCloseDeliversEverythingThenCloseNotify() throws {
        let server = try certs.server()
        let client = try TLSContext.client(caFile: certs.ca)
        let body = pattern(1 << 20)
        final class Sender: ConnectionHandler, @unchecked Sendable {
            let body: [UInt8]
            init(_ body: [UInt8]) { self.body = body }
            func connectionConnected(_ c: TCPConnection) {
                body.withUnsafeBytes { _ = c.enqueue(copying: $0) }
                c.close(afterFlush: true)
            }
            func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {}
        }
        let c = Client(expectEcho: false)
        try withTLSPair(server: server, onAccept: { conn in
            Socket.setBufferSizes(conn.fd, send: 4096, receive: 4096)
            conn.handler = Sender(body)
        }) { port, loop in
            connectTLS(port: port, on: loop, context: client, handler: c, configure: tinyClientBuffers)
            #expect(c.seen.closed.wait(seconds: 60))
        }
        #expect(c.seen.received.count == body.count)
        #expect(firstDifference(c.seen.received, body) == nil)
        #expect(c.seen.sawEOF, "a close_notify, read as EOF")
        #expect(c.seen.error == nil)
    }

    @Test func plainHTTPOnTheTLSPortFailsTheHandshakeWithItsReasonAndAnAnswer() throws {
        let answer = Array("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".utf8)
        let server = try TLSContext.server(certificateFile: certs.serverCert, keyFile: certs.serverKey, plainHTTPResponse: answer)
        let serverSide = Observed()
        final class PlainClient: ConnectionHandler, @unchecked Sendable {
            let done = Flag()
            var got: [UInt8] = []
            func connectionConnected(_ c: TCPConnection) { c.enqueue(copying: Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) }
            func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) { got += bytes.bytes }
            func connectionClosed(_ c: TCPConnection, error: SystemError?) { done.set() }
        }
        let plain = PlainClient()
        try withTLSPair(server: server, onAccept: { $0.handler = EchoServer(serverSide) }) { port, loop in
            loop.execute {
                _ = try! TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: loop, handler: plain)
            }
            #expect(serverSide.closed.wait())
            #expect(plain.done.wait())
        }
        #expect(serverSide.error?.detail == "http request")
        #expect(plain.got == answer, "answered in the clear")
    }

    @Test func unusableFilesAreNamedInTheError() throws {
        func message(_ body: () throws -> TLSContext) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        let missing = message { try TLSContext.server(certificateFile: "/nonexistent/cert.pem", keyFile: certs.serverKey) }
        #expect(missing.contains("/nonexistent/cert.pem") && missing.contains("No such file"), "\(missing)")
        // A key that is not the certificate's.
        let mismatch = message { try TLSContext.server(certificateFile: certs.serverCert, keyFile: certs.clientKey) }
        #expect(mismatch.contains(certs.clientKey) && mismatch.contains("does not match"), "\(mismatch)")
        // A certificate file that holds a key.
        let notCert = message { try TLSContext.server(certificateFile: certs.serverKey, keyFile: certs.serverKey) }
        #expect(notCert.contains(certs.serverKey) && notCert.contains("certificate"), "\(notCert)")
        let badCA = message { try TLSContext.server(certificateFile: certs.serverCert, keyFile: certs.serverKey, clientCAFile: certs.serverKey) }
        #expect(badCA.contains(certs.serverKey) && badCA.contains("CA"), "\(badCA)")
    }
}
