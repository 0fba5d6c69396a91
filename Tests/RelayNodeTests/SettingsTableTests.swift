import Glibc
@testable import RelayNode

/// The settings table is the one place a setting is declared: the command
/// line, `--help`, the environment, the YAML keys, the error messages and
/// the README all follow it.
@Suite struct SettingsTableTests {
    static let readme: String = {
        let here = String(#filePath)
        let root = here.components(separatedBy: "/Tests/").first!
        guard let f = fopen(root + "/README.md", "r") else { return "" }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }()

    @Test func keysAreUnique() {
        let keys = RelaySettings.Spec.all.map(\.key)
        #expect(Set(keys).count == keys.count)
        let env = RelaySettings.Spec.all.flatMap(\.env)
        #expect(Set(env).count == env.count)
    }

    @Test func helpListsEverySettingWithItsEnvironmentNames() {
        let help = SettingsCommandLine.help
        for spec in RelaySettings.Spec.all {
            #expect(help.contains("  \(spec.flag)"), "help lacks \(spec.flag)")
            for name in spec.env { #expect(help.contains(name), "help lacks \(name) of \(spec.key)") }
        }
    }

    @Test func theReadmeMentionsEveryFlag() {
        #expect(!Self.readme.isEmpty)
        for spec in RelaySettings.Spec.all {
            #expect(Self.readme.contains("`\(spec.flag)") || Self.readme.contains(spec.env.first.map { "`\($0)`" } ?? "-"),
                    "README.md mentions neither \(spec.flag) nor its environment name")
        }
    }

    @Test func everySettingIsAFlag() throws {
        for spec in RelaySettings.Spec.all {
            let value = spec.kind == .flag ? nil : "x"
            let parsed = try SettingsCommandLine.parse([spec.flag] + (value.map { [$0] } ?? []))
            #expect(parsed == .serve(flags: [spec.key: value ?? "true"], configPath: nil))
        }
    }

    @Test func commandLineForms() throws {
        #expect(try SettingsCommandLine.parse(["--port=9000", "--dev", "--config", "c.yaml"])
                == .serve(flags: ["port": "9000", "dev": "true"], configPath: "c.yaml"))
        #expect(try SettingsCommandLine.parse(["--dev=false"]) == .serve(flags: ["dev": "false"], configPath: nil))
        #expect(try SettingsCommandLine.parse(["--port", "1", "--help"]) == .help)
        #expect(throws: ConfigurationError.self) { try SettingsCommandLine.parse(["--bogus"]) }
        #expect(throws: ConfigurationError.self) { try SettingsCommandLine.parse(["--port"]) }
        #expect(throws: ConfigurationError.self) { try SettingsCommandLine.parse(["port"]) }
    }

    func resolve(flags: [String: String] = [:], env: [String: String] = [:], file: [String: String] = [:]) throws -> RelaySettings {
        try RelaySettings.resolve(SettingSources(flags: flags, environment: env, file: file), hostname: "h")
    }

    @Test func flagsWinOverTheEnvironmentWhichWinsOverTheFile() throws {
        let s = try resolve(flags: ["port": "1001"], env: ["SERVER_PORT": "1002", "JWT_SECRET": "s"], file: ["port": "1003"])
        #expect(s.port == 1001)
        #expect(try resolve(env: ["RELAY_SERVER_PORT": "1002", "JWT_SECRET": "s"], file: ["port": "1003"]).port == 1002)
        #expect(try resolve(env: ["JWT_SECRET": "s"], file: ["port": "1003"]).port == 1003)
        #expect(try resolve(env: ["JWT_SECRET": "s"]).port == 8090)
    }

    @Test func aBadValueNamesTheSettingItsNamesAndWhereItCameFrom() {
        do {
            _ = try resolve(env: ["JWT_SECRET": "s", "RUNNER_RECONNECT_TIMEOUT": "soon"])
            Issue.record("accepted a bad duration")
        } catch {
            let m = "\(error)"
            #expect(m.contains("runner-reconnect-timeout") && m.contains("RUNNER_RECONNECT_TIMEOUT"))
            #expect(m.contains("environment RUNNER_RECONNECT_TIMEOUT") && m.contains("'soon'"))
        }
        for (key, bad) in [("lag-limit", "0"), ("log-format", "xml"), ("max-message-size", "12"), ("dev", "maybe")] {
            #expect(throws: ConfigurationError.self, "\(key)=\(bad)") { try resolve(flags: [key: bad, "jwt-secret": "s"]) }
        }
    }

    @Test func theNewKnobsReachThePods() throws {
        let s = try resolve(flags: ["jwt-secret": "s", "held-input-bytes": "10", "lag-limit": "5", "lag-window": "2s"])
        #expect(s.pod.heldInputBytes == 10)
        #expect(s.pod.lagLimit == 5)
        #expect(s.pod.lagWindow == 2_000_000_000)
    }
}
