// Micro-benchmarks of the Reactor's hot-path pieces: slab slices, the
// outbound queue and the mailbox. All single-threaded; no sockets.
//
// Reading the table: with scalingFactor .kilo/.mega the time and malloc
// columns are per scaled iteration (one operation) and the throughput column
// is operations per second; the names say what one operation is.
import Benchmark
import Glibc
import Reactor

/// IOV_MAX on Linux (CReactor's CREACTOR_IOV_MAX; not a product of the root).
private let iovMax = 1024

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    // One operation: take a 64-byte sub-slice of a slab, retain it, release it
    // (what a fan-out does per subscriber: a plain loop-local count, no ARC).
    Benchmark(
        "Slab slice+retain+release (op)",
        configuration: .init(scalingFactor: .mega)
    ) { benchmark in
        let slab = Slab.allocate(capacity: 64 * 1024)
        slab.used = slab.capacity
        defer { slab.release() }
        let whole = slab.written
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            let s = whole.slice(from: (i & 1023) &* 64, count: 64)
            s.retain()
            blackHole(s.count)
            s.release()
        }
        benchmark.stopMeasurement()
        precondition(slab.refs == 1)
    }

    // One operation: a whole batch, as in one loop turn of one connection:
    // enqueue 32 slices of 64 B (retaining each), then flush into a writer
    // that takes everything (one "writev", releasing each slice).
    do {
        let payload = 64
        Benchmark(
            "OutboundQueue 32 x \(payload) B enqueue+flush (batch)",
            configuration: .init(scalingFactor: .kilo)
        ) { benchmark in
            let slab = Slab.allocate(capacity: 32 * payload)
            slab.used = slab.capacity
            defer { slab.release() }
            let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: iovMax)
            defer { iovecs.deallocate() }
            var queue = OutboundQueue(limit: 1 << 30)
            var written = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                for k in 0..<32 {
                    _ = queue.enqueue(slab.written.slice(from: k * payload, count: payload))
                }
                let result = queue.flush(iovecs: iovecs) { iov, n in
                    var total = 0
                    for i in 0..<Int(n) { total &+= iov[i].iov_len }
                    written &+= total
                    return .bytes(total)
                }
                precondition(result == .drained)
            }
            benchmark.stopMeasurement()
            blackHole(written)
            precondition(slab.refs == 1 && queue.isEmpty)
        }
    }

    // One operation: post 1000 items, then drain them (one thread: the lock
    // is uncontended; one eventfd write per batch, one read per drain).
    // Mailbox is generic and not @inlinable, so from this module Mailbox<Int>
    // runs unspecialized; EventLoop's Mailbox<Job> is specialized inside
    // Reactor and is several times cheaper per item.
    Benchmark(
        "Mailbox<Int> post 1000 + drain, unspecialized (batch)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark in
        let mailbox = try! Mailbox<Int>()
        var sum = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for i in 0..<1000 { mailbox.post(i) }
            let n = mailbox.drain { sum &+= $0 }
            precondition(n == 1000)
        }
        benchmark.stopMeasurement()
        blackHole(sum)
        mailbox.close()
    }
}
