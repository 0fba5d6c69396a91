/// One configuration setting: its flag, its environment names and its YAML
/// key, so that every error message can name all three.
struct SettingSpec: Sendable {
    /// Flag name without dashes, also the YAML key (e.g. "port").
    let key: String
    /// Environment names (each is also accepted with a `RELAY_` prefix).
    let env: [String]
    let defaultValue: String?
    let help: String

    var flag: String { "--\(key)" }

    /// Every environment name that sets this value, in precedence order.
    var environmentNames: [String] {
        env.flatMap { [$0, "RELAY_" + $0] }
    }

    var names: String {
        ([flag] + env).joined(separator: ", ")
    }
}

/// A setting value that cannot be used; start-up stops with this message.
struct ConfigurationError: Error, CustomStringConvertible {
    let description: String

    init(_ spec: SettingSpec, value: String, expected: String, origin: String) {
        description = "invalid value '\(value)' for \(spec.key) (\(spec.names)) from \(origin): expected \(expected)"
    }

    init(_ message: String) {
        description = message
    }
}

/// Where settings come from, highest precedence first: flags, then the
/// environment, then the YAML file, then the defaults.
struct SettingSources {
    var flags: [String: String] = [:]
    var environment: [String: String] = [:]
    var file: [String: String] = [:]
    var fileName = "config file"

    func raw(_ spec: SettingSpec) -> (value: String, origin: String)? {
        if let v = flags[spec.key] { return (v, spec.flag) }
        for name in spec.environmentNames {
            if let v = environment[name] { return (v, "environment \(name)") }
        }
        if let v = file[spec.key] { return (v, "\(fileName) key \(spec.key)") }
        if let v = spec.defaultValue { return (v, "default") }
        return nil
    }

    func string(_ spec: SettingSpec) -> String? { raw(spec)?.value }

    func int(_ spec: SettingSpec, in range: ClosedRange<Int>) throws -> Int {
        guard let (v, origin) = raw(spec) else { throw ConfigurationError("\(spec.key) (\(spec.names)) is required") }
        guard let n = Int(v.trimmingSpaces), range.contains(n) else {
            throw ConfigurationError(spec, value: v, expected: "an integer from \(range.lowerBound) to \(range.upperBound)", origin: origin)
        }
        return n
    }

    func bool(_ spec: SettingSpec) throws -> Bool {
        guard let (v, origin) = raw(spec) else { return false }
        switch v.trimmingSpaces.lowercased() {
        case "1", "true", "yes", "on": return true
        case "", "0", "false", "no", "off": return false
        default: throw ConfigurationError(spec, value: v, expected: "true or false", origin: origin)
        }
    }

    /// A Go-style duration ("10s", "500ms", "1m30s") in nanoseconds.
    func duration(_ spec: SettingSpec, minimum: UInt64 = 1_000_000) throws -> UInt64 {
        guard let (v, origin) = raw(spec) else { throw ConfigurationError("\(spec.key) (\(spec.names)) is required") }
        guard let ns = GoDuration.parse(v.trimmingSpaces), ns >= minimum else {
            throw ConfigurationError(spec, value: v, expected: "a duration such as 10s, 500ms or 1m (at least \(GoDuration.format(minimum)))", origin: origin)
        }
        return ns
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
