import Glibc
import COpenSSL
import CTLS

/// One OpenSSL context: certificate chain and key, peer verification,
/// versions, ALPN. Immutable once made; a reload makes a new one, and every
/// transport keeps the context it was made from alive (`TLSTransport.context`).
public final class TLSContext: @unchecked Sendable {
    public enum Role: Sendable { case server, client }

    /// Owned: freed in deinit, after the last transport made from it is gone.
    let ctx: OpaquePointer
    public let role: Role
    /// ALPN protocols, most preferred first.
    public let applicationProtocols: [String]
    /// The server's ALPN list in wire format, read by the selection
    /// callback during handshakes (lives as long as `ctx`).
    private let alpnWire: UnsafeMutableBufferPointer<UInt8>
    /// The leaf certificate's expiry, seconds since the epoch (0: none).
    public let certificateNotAfter: Int64
    public let requiresClientCertificate: Bool
    /// Sent in the clear to a client that spoke plain HTTP to this TLS
    /// server (nil: just close), e.g. a 400 saying to use https://.
    public let plainHTTPResponse: [UInt8]?

    private init(ctx: OpaquePointer, role: Role, alpn: [String], requiresClientCertificate: Bool, plainHTTPResponse: [UInt8]? = nil) {
        self.ctx = ctx
        self.plainHTTPResponse = plainHTTPResponse
        self.role = role
        applicationProtocols = alpn
        self.requiresClientCertificate = requiresClientCertificate
        let wire = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        alpnWire = .allocate(capacity: max(wire.count, 1))
        _ = alpnWire.initialize(from: wire)
        certificateNotAfter = Int64(ctls_ctx_leaf_not_after(ctx))
        if !wire.isEmpty {
            switch role {
            case .server: ctls_ctx_set_alpn_server(ctx, alpnWire.baseAddress, UInt32(wire.count))
            case .client: _ = SSL_CTX_set_alpn_protos(ctx, alpnWire.baseAddress, UInt32(wire.count))
            }
        }
    }

    deinit {
        SSL_CTX_free(ctx)
        alpnWire.deallocate()
    }

    /// A server context from PEM files. `clientCAFile`: mutual TLS, every
    /// client must present a certificate signed by that CA.
    public static func server(
        certificateFile: String, keyFile: String, clientCAFile: String? = nil,
        minimumVersion: TLSVersion = .v1_2, applicationProtocols: [String] = ["http/1.1"],
        plainHTTPResponse: [UInt8]? = nil
    ) throws(TLSConfigurationError) -> TLSContext {
        try readable(certificateFile)
        try readable(keyFile)
        if let clientCAFile { try readable(clientCAFile) }
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSConfigurationError(file: certificateFile, "cannot create a TLS context: \(lastError())")
        }
        var made = false
        defer { if !made { SSL_CTX_free(ctx) } }
        guard ctls_ctx_apply_policy(ctx, 1) == 1, ctls_ctx_set_min_proto(ctx, minimumVersion.openSSL) == 1 else {
            throw TLSConfigurationError(file: certificateFile, "cannot apply the TLS policy: \(lastError())")
        }
        ctls_ctx_no_password_prompt(ctx)
        switch ctls_ctx_load_chain_and_key(ctx, certificateFile, keyFile) {
        case 0: break
        case 1: throw TLSConfigurationError(file: certificateFile, "not a usable PEM certificate chain (\(lastError()))")
        case 2: throw TLSConfigurationError(file: keyFile, "not a usable PEM private key (unencrypted) (\(lastError()))")
        default: throw TLSConfigurationError(file: keyFile, "the key does not match the certificate in \(certificateFile) (\(lastError()))")
        }
        // Sessions resume across connections of one context (tickets, and
        // the cache for TLS 1.2); with client certificates the cache needs
        // an id context or resumption fails.
        let sid: [UInt8] = Array("relay".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
        if let clientCAFile {
            guard SSL_CTX_load_verify_locations(ctx, clientCAFile, nil) == 1,
                  let names = SSL_load_client_CA_file(clientCAFile) else {
                throw TLSConfigurationError(file: clientCAFile, "not a usable PEM CA certificate (\(lastError()))")
            }
            SSL_CTX_set_client_CA_list(ctx, names)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        made = true
        return TLSContext(ctx: ctx, role: .server, alpn: applicationProtocols, requiresClientCertificate: clientCAFile != nil,
                          plainHTTPResponse: plainHTTPResponse)
    }

    /// A client context. `verifyPeer` false accepts any certificate (tests
    /// against self-signed relays: `--insecure`); `caFile` replaces the
    /// system's CAs; `certificateFile`/`keyFile` present a client certificate.
    public static func client(
        caFile: String? = nil, verifyPeer: Bool = true, certificateFile: String? = nil, keyFile: String? = nil,
        minimumVersion: TLSVersion = .v1_2, applicationProtocols: [String] = ["http/1.1"]
    ) throws(TLSConfigurationError) -> TLSContext {
        if let caFile { try readable(caFile) }
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSConfigurationError(file: caFile ?? "-", "cannot create a TLS context: \(lastError())")
        }
        var made = false
        defer { if !made { SSL_CTX_free(ctx) } }
        _ = ctls_ctx_apply_policy(ctx, 0)
        _ = ctls_ctx_set_min_proto(ctx, minimumVersion.openSSL)
        ctls_ctx_no_password_prompt(ctx)
        if verifyPeer {
            if let caFile {
                guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                    throw TLSConfigurationError(file: caFile, "not a usable PEM CA certificate (\(lastError()))")
                }
            } else {
                SSL_CTX_set_default_verify_paths(ctx)
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        if let certificateFile {
            let keyFile = keyFile ?? certificateFile
            try readable(certificateFile)
            try readable(keyFile)
            if ctls_ctx_load_chain_and_key(ctx, certificateFile, keyFile) != 0 {
                throw TLSConfigurationError(file: certificateFile, "not a usable certificate and key (\(lastError()))")
            }
        }
        made = true
        return TLSContext(ctx: ctx, role: .client, alpn: applicationProtocols, requiresClientCertificate: false)
    }

    private static func readable(_ path: String) throws(TLSConfigurationError) {
        guard let f = fopen(path, "r") else {
            throw TLSConfigurationError(file: path, "cannot read: \(String(cString: strerror(errno)))")
        }
        fclose(f)
    }

    static func lastError() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        ctls_last_error_string(&buf, buf.count)
        let s = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.isEmpty ? "no detail from OpenSSL" : s
    }
}
