import Glibc
import Synchronization
@testable import Reactor

/// Every Reactor test that opens descriptors or threads runs inside this
/// serialized suite, so that counting /proc/self/fd means something.
@_exported import Testing

@Suite(.serialized) struct ReactorSuite {}

/// A flag set on one thread and awaited on another (polling, bounded).
final class Flag: Sendable {
    private let value = Locked(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
    /// Waits up to `seconds`; returns whether the flag was set.
    func wait(seconds: Double) -> Bool {
        let deadline = MonotonicClock.now() + UInt64(seconds * 1e9)
        while !isSet {
            if MonotonicClock.now() > deadline { return false }
            usleep(1000)
        }
        return true
    }
}

/// A counter shared between loops and the test thread.
final class Counter: Sendable {
    private let value = Locked(0)
    @discardableResult func add(_ n: Int = 1) -> Int { value.withLock { $0 += n; return $0 } }
    var current: Int { value.withLock { $0 } }
}

func openDescriptors() -> [String] {
    guard let dir = opendir("/proc/self/fd") else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Threads of this process named like loop threads ("loop-N").
func loopThreadCount() -> Int {
    guard let dir = opendir("/proc/self/task") else { return 0 }
    defer { closedir(dir) }
    var n = 0
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        guard tid != "." && tid != ".." else { continue }
        guard let f = fopen("/proc/self/task/\(tid)/comm", "r") else { continue }
        var buf = [CChar](repeating: 0, count: 64)
        fgets(&buf, 64, f)
        fclose(f)
        if buf.withUnsafeBufferPointer({ String(cString: $0.baseAddress!) }).hasPrefix("loop-") { n += 1 }
    }
    return n
}

/// A deterministic byte pattern addressed by stream position.
@inline(__always)
func patternByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 31 &+ (i >> 11)) }

/// Echoes every byte back, zero copy (the read slice is queued by
/// reference). At the outbound bound it queues the read anyway and pauses
/// reading until the queue drains: memory stays within limit + one read.
final class EchoHandler: ConnectionHandler {
    let closed: Counter?
    init(closed: Counter? = nil) { self.closed = closed }
    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        if !c.enqueue(bytes) {
            c.enqueue(bytes, force: true)
            c.pauseReading()
        }
    }
    func connectionDrained(_ c: TCPConnection) { c.resumeReading() }
    func connectionClosed(_ c: TCPConnection, error: SystemError?) { closed?.add() }
}

/// Runs a started group for the duration of `body`, then stops and joins it.
func withGroup<R>(loops: Int, _ body: (EventLoopGroup) throws -> R) throws -> R {
    let group = try EventLoopGroup(loopCount: loops)
    group.start()
    defer {
        group.stop()
        group.join()
    }
    return try body(group)
}
