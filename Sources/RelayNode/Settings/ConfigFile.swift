import Glibc
import Reactor
import Yams

/// The optional YAML settings file: a flat mapping from setting keys (the
/// flag names, e.g. `port`, `jwt-issuer`) to scalars.
enum ConfigFile {
    static func load(path: String) throws -> [String: String] {
        guard let text = FileContents.text(path) else {
            throw ConfigurationError("cannot read config file \(path): \(String(cString: strerror(errno)))")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigurationError("config file \(path) is not valid YAML: \(error)")
        }
        guard let node else { return [:] }
        guard let mapping = node.mapping else { throw ConfigurationError("config file \(path) must be a mapping of setting: value") }
        let known = Set(RelaySettings.Spec.all.map(\.key))
        var out: [String: String] = [:]
        for (k, v) in mapping {
            guard let key = k.string else { throw ConfigurationError("config file \(path): keys must be strings") }
            guard known.contains(key) else {
                throw ConfigurationError("config file \(path): unknown setting '\(key)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            guard let value = v.scalar?.string else { throw ConfigurationError("config file \(path): \(key) must be a scalar") }
            out[key] = value
        }
        return out
    }
}
