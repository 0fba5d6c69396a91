import Glibc
import Reactor

/// CPU time and memory of a process, read from /proc.
enum ProcessCPU {
    /// utime + stime of `pid` (or this process) in microseconds.
    static func microseconds(pid: Int32? = nil) -> UInt64? {
        let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
        guard let text = FileContents.text(path), let close = text.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3; utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = UInt64(fields[11]), let s = UInt64(fields[12]) else { return nil }
        let hz = UInt64(sysconf(Int32(_SC_CLK_TCK)))
        return (u + s) * 1_000_000 / hz
    }

    /// VmRSS of `pid` in bytes.
    static func residentBytes(pid: Int32) -> UInt64? {
        guard let text = FileContents.text("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

}
