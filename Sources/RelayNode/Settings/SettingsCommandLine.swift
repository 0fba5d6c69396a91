/// `relay serve`'s command line, made from the settings table: every
/// setting is a flag (`--key value`, `--key=value`; a flag setting alone
/// means true), plus `--config FILE` and `--help`.
public enum SettingsCommandLine {
    public enum Parsed: Equatable {
        case serve(flags: [String: String], configPath: String?)
        case help
    }

    public static func parse(_ arguments: [String]) throws -> Parsed {
        let specs = Dictionary(uniqueKeysWithValues: RelaySettings.Spec.all.map { ($0.key, $0) })
        var flags: [String: String] = [:]
        var configPath: String? = nil
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--help" || arg == "-h" { return .help }
            guard arg.hasPrefix("--"), arg.count > 2 else {
                throw ConfigurationError("unexpected argument '\(arg)' (settings are given as --name value; see relay serve --help)")
            }
            var name = String(arg.dropFirst(2))
            var value: String? = nil
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if name == "config" {
                guard let v = value ?? next(arguments, &i) else { throw ConfigurationError("--config needs a file name") }
                configPath = v
                continue
            }
            guard let spec = specs[name] else {
                throw ConfigurationError("unknown option '--\(name)' (relay serve --help lists every setting)")
            }
            if spec.kind == .flag && value == nil {
                flags[name] = "true"
                continue
            }
            guard let v = value ?? next(arguments, &i) else { throw ConfigurationError("\(spec.flag) needs a value: \(spec.expected)") }
            flags[name] = v
        }
        return .serve(flags: flags, configPath: configPath)
    }

    private static func next(_ arguments: [String], _ i: inout Int) -> String? {
        guard i < arguments.count else { return nil }
        defer { i += 1 }
        return arguments[i]
    }

    /// `relay serve --help`: every setting with its flag, value, environment
    /// names and default.
    public static var help: String {
        var out = """
        USAGE: relay [serve] [--config <file>] [--<setting> <value> ...]
               relay attach --url ws://host:port --pod <key> (--secret <s> | --token <t>) -- <command>

        Runs the relay. Settings come from flags, then the environment (each name
        also with a RELAY_ prefix), then the YAML file given with --config (keys as
        the flag names, e.g. `port: 8090`), then the defaults. Durations are
        Go-style (10s, 500ms, 1m).

        OPTIONS:
          --config <file>
                YAML file of settings.

        """
        for spec in RelaySettings.Spec.all {
            let value = spec.valueName.isEmpty ? "" : " \(spec.valueName)"
            out += "  \(spec.flag)\(value)\n"
            var detail = "        \(spec.help) [\(spec.env.joined(separator: ", "))]"
            if let d = spec.defaultValue, !d.isEmpty, spec.kind != .flag { detail += " (default: \(d))" }
            out += detail + "\n"
        }
        out += "  -h, --help\n        Show this help.\n"
        return out
    }
}
