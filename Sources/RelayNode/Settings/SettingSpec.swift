/// One configuration setting, declared once: its key (the flag without
/// dashes, also the YAML key), its environment names, its default, its help
/// text and the kind of value it takes, which decides both how it is parsed
/// and what the error says when it cannot be.
public struct SettingSpec: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Free text (empty allowed).
        case text
        /// true/false; on the command line `--key` alone means true.
        case flag
        case integer(ClosedRange<Int>)
        /// A Go-style duration ("10s", "500ms", "1m30s") of at least `minimum` ns.
        case duration(minimum: UInt64)
        /// One of a few words.
        case choice([String])
        /// A comma-separated list.
        case list
    }

    /// Flag name without dashes, also the YAML key (e.g. "port").
    public let key: String
    /// Environment names (each is also accepted with a `RELAY_` prefix).
    public let env: [String]
    public let defaultValue: String?
    public let help: String
    public let kind: Kind

    public init(_ key: String, env: [String], default defaultValue: String?, _ kind: Kind, help: String) {
        self.key = key
        self.env = env
        self.defaultValue = defaultValue
        self.kind = kind
        self.help = help
    }

    public var flag: String { "--\(key)" }

    /// Every environment name that sets this value, in precedence order.
    public var environmentNames: [String] {
        env.flatMap { [$0, "RELAY_" + $0] }
    }

    /// The flag and the environment names, for messages.
    public var names: String {
        ([flag] + env).joined(separator: ", ")
    }

    /// What a valid value looks like, for messages and help.
    public var expected: String {
        switch kind {
        case .text: return "text"
        case .flag: return "true or false"
        case .integer(let r): return "an integer from \(r.lowerBound) to \(r.upperBound)"
        case .duration(let minimum): return "a duration such as 10s, 500ms or 1m (at least \(GoDuration.format(minimum)))"
        case .choice(let words): return words.joined(separator: ", ")
        case .list: return "a comma-separated list"
        }
    }

    /// The placeholder shown after the flag in help.
    var valueName: String {
        switch kind {
        case .text, .list: return "<text>"
        case .flag: return ""
        case .integer: return "<n>"
        case .duration: return "<duration>"
        case .choice(let words): return "<\(words.joined(separator: "|"))>"
        }
    }
}

/// A setting value that cannot be used; start-up stops with this message.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String

    init(_ spec: SettingSpec, value: String, origin: String) {
        description = "invalid value '\(value)' for \(spec.key) (\(spec.names)) from \(origin): expected \(spec.expected)"
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

    func required(_ spec: SettingSpec) throws -> (value: String, origin: String) {
        guard let r = raw(spec) else { throw ConfigurationError("\(spec.key) (\(spec.names)) is required") }
        return (r.value.trimmingSpaces, r.origin)
    }

    func int(_ spec: SettingSpec) throws -> Int {
        guard case .integer(let range) = spec.kind else { preconditionFailure("\(spec.key) is not an integer setting") }
        let (v, origin) = try required(spec)
        guard let n = Int(v), range.contains(n) else { throw ConfigurationError(spec, value: v, origin: origin) }
        return n
    }

    func bool(_ spec: SettingSpec) throws -> Bool {
        guard let (v, origin) = raw(spec) else { return false }
        switch v.trimmingSpaces.lowercased() {
        case "1", "true", "yes", "on": return true
        case "", "0", "false", "no", "off": return false
        default: throw ConfigurationError(spec, value: v, origin: origin)
        }
    }

    /// A Go-style duration in nanoseconds.
    func duration(_ spec: SettingSpec) throws -> UInt64 {
        guard case .duration(let minimum) = spec.kind else { preconditionFailure("\(spec.key) is not a duration setting") }
        let (v, origin) = try required(spec)
        guard let ns = GoDuration.parse(v), ns >= minimum else { throw ConfigurationError(spec, value: v, origin: origin) }
        return ns
    }

    func choice(_ spec: SettingSpec) throws -> String {
        guard case .choice(let words) = spec.kind else { preconditionFailure("\(spec.key) is not a choice setting") }
        let (v, origin) = try required(spec)
        guard words.contains(v) else { throw ConfigurationError(spec, value: v, origin: origin) }
        return v
    }

    func list(_ spec: SettingSpec) -> [String] {
        (string(spec) ?? "").split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
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
