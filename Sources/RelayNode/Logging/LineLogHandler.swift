import Glibc
import Logging

/// swift-log handler writing one line per event to stderr, as logfmt
/// (`ts=… level=info msg="…" key=value`) or JSON. Callers log connection
/// events, never frames, so a lock-free write(2) per line is plenty.
public struct LineLogHandler: LogHandler {
    public enum Format: Sendable { case logfmt, json }

    let label: String
    let format: Format
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
        let line: String
        switch format {
        case .logfmt:
            var s = "ts=\(Self.timestamp()) level=\(event.level) msg=\(Self.logfmtValue("\(event.message)"))"
            for (k, v) in fields { s += " \(k)=\(Self.logfmtValue(v))" }
            line = s + "\n"
        case .json:
            var s = "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(event.level)\",\"msg\":\(Self.jsonString("\(event.message)"))"
            for (k, v) in fields { s += ",\(Self.jsonString(k)):\(Self.jsonString(v))" }
            line = s + "}\n"
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    static func logfmtValue(_ v: String) -> String {
        if !v.isEmpty && !v.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" }) { return v }
        return jsonString(v)
    }

    static func jsonString(_ v: String) -> String {
        var out = "\""
        for u in v.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

extension LineLogHandler {
    /// Makes every logger of the process write lines through this handler.
    public static func bootstrap(format: Format = .logfmt, level: Logger.Level) {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, logLevel: level) }
    }
}
