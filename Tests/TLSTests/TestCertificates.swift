import Glibc
import Reactor
@testable import TLS
@_exported import Testing

/// Certificates made once per test run with the `openssl` command: a CA, a
/// server certificate for 127.0.0.1 and localhost, a client certificate
/// from the CA, and one from another CA.
struct TestCertificates: Sendable {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }
    var strangerCert: String { dir + "/stranger.pem" }
    var strangerKey: String { dir + "/stranger.key" }

    static let shared: TestCertificates = {
        var template = Array("/tmp/relay-tls-tests-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let script = """
        set -e
        cd '\(dir)'
        q() { "$@" >/dev/null 2>&1; }
        q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca
        q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
        q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=relay-test
        q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
        q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj /CN=runner-1/O=mesh
        q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
        q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key -out stranger.csr -subj /CN=stranger
        q openssl x509 -req -in stranger.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out stranger.pem -days 2
        """
        let rc = system("/bin/sh -c \"$(cat <<'EOS'\n\(script)\nEOS\n)\"")
        precondition(rc == 0, "openssl could not make the test certificates (is the openssl command installed?)")
        return TestCertificates(dir: dir)
    }()

    func server(clientCA: Bool = false, minimumVersion: TLSVersion = .v1_2, alpn: [String] = ["http/1.1"]) throws -> TLSContext {
        try TLSContext.server(certificateFile: serverCert, keyFile: serverKey, clientCAFile: clientCA ? ca : nil,
                              minimumVersion: minimumVersion, applicationProtocols: alpn)
    }
}

/// A flag set on one thread and awaited on another (polling, bounded).
final class Flag: Sendable {
    private let value = Locked(false)
    func set() { value.withLock { $0 = true } }
    func wait(seconds: Double = 30) -> Bool {
        let deadline = MonotonicClock.now() + UInt64(seconds * 1e9)
        while !value.withLock({ $0 }) {
            if MonotonicClock.now() > deadline { return false }
            usleep(1000)
        }
        return true
    }
}

/// A TLS server on one loop thread and a client on another, on loopback.
func withTLSPair<R>(server: TLSContext, onAccept: @escaping @Sendable (TCPConnection) -> Void,
                    _ body: (_ port: Int, _ clientLoop: EventLoop) throws -> R) throws -> R {
    let servers = try EventLoopGroup(loopCount: 1)
    let port = try servers.listen(on: SocketAddress(host: "127.0.0.1", port: 0),
                                  transport: { fd in try TLSTransport(fd: fd, context: server) }, onAccept: onAccept)
    let clients = try EventLoopGroup(loopCount: 1)
    servers.start()
    clients.start()
    defer {
        clients.stop(); clients.join()
        servers.stop(); servers.join()
    }
    return try body(port, clients.loops[0])
}

/// Connects a TLS client on `loop` (from any thread).
func connectTLS(port: Int, on loop: EventLoop, context: TLSContext, serverName: String = "127.0.0.1",
                handler: any ConnectionHandler & Sendable, configure: (@Sendable (Int32) -> Void)? = nil) {
    loop.execute {
        _ = try! TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: loop, handler: handler,
                                       configure: configure) { fd in
            try TLSTransport(fd: fd, context: context, serverName: serverName)
        }
    }
}
