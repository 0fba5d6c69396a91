import Glibc
import TLS
import Framing

/// The TLS settings of the listener, checked at start-up by making a
/// context from them (so a bad file stops the relay with the setting's name).
struct TLSSettings: Sendable {
    var certificateFile: String
    var keyFile: String
    var clientCAFile: String?
    var minimumVersion: TLSVersion
    /// fnmatch(3) glob a runner's client-certificate subject must match
    /// ("" = any); only with `clientCAFile`.
    var runnerSubject: String
    /// ALPN, in the server's order of preference: h2 first when HTTP/2 is on.
    var applicationProtocols = ["http/1.1"]

    typealias Spec = RelaySettings.Spec

    static func resolve(_ s: SettingSources, http2: Bool) throws -> TLSSettings {
        func file(_ spec: SettingSpec) throws -> String {
            guard let v = s.string(spec), !v.isEmpty else {
                throw ConfigurationError("\(spec.key) (\(spec.names)) is required with tls (\(Spec.tls.names)): the path of a PEM file")
            }
            return v
        }
        let ca = s.string(Spec.tlsClientCA).flatMap { $0.isEmpty ? nil : $0 }
        var settings = TLSSettings(
            certificateFile: try file(Spec.tlsCert), keyFile: try file(Spec.tlsKey), clientCAFile: ca,
            minimumVersion: TLSVersion(rawValue: try s.choice(Spec.tlsMinVersion)) ?? .v1_2,
            runnerSubject: s.string(Spec.tlsRunnerSubject) ?? "")
        if http2 { settings.applicationProtocols = ["h2", "http/1.1"] }
        if !settings.runnerSubject.isEmpty && ca == nil {
            throw ConfigurationError("\(Spec.tlsRunnerSubject.key) (\(Spec.tlsRunnerSubject.names)) needs \(Spec.tlsClientCA.key) (\(Spec.tlsClientCA.names)): without client certificates there is no subject to match")
        }
        _ = try settings.makeContext(sources: s)
        return settings
    }

    /// A server context from the files as they are now. A file that cannot
    /// be used is reported with the setting that named it.
    func makeContext(sources: SettingSources? = nil) throws -> TLSContext {
        do {
            return try TLSContext.server(certificateFile: certificateFile, keyFile: keyFile, clientCAFile: clientCAFile,
                                         minimumVersion: minimumVersion, applicationProtocols: applicationProtocols,
                                         plainHTTPResponse: HTTPResponse.simple(status: 400, body: "this port speaks TLS: use https:// or wss://\n"))
        } catch {
            let spec = error.file == keyFile ? Spec.tlsKey : error.file == clientCAFile ? Spec.tlsClientCA : Spec.tlsCert
            let origin = sources?.raw(spec).map { " from \($0.origin)" } ?? ""
            throw ConfigurationError("\(spec.key) (\(spec.names))\(origin): \(error)")
        }
    }

    /// Whether a runner presenting `subject` may connect.
    func runnerAllowed(subject: String?) -> Bool {
        if runnerSubject.isEmpty { return true }
        guard let subject else { return false }
        return fnmatch(runnerSubject, subject, 0) == 0
    }
}
