// WebSocket codec throughput, sans-I/O.
//
// Units: the decoder and writeClientFrame benchmarks handle exactly
// 1,000,000 wire bytes per iteration (scalingFactor .mega, one scaled
// iteration = one byte), so the throughput column reads in bytes per second
// ("(M)" = MB/s, 10^6) and the time column is per byte. The buffer is filled
// with frames of the named payload size; the last frame is shortened so the
// total is exactly 1,000,000 bytes. writeServerHeader: one scaled iteration
// = one header; the throughput column is headers per second.
//
// mallocCountTotal is per iteration: a decoder fed whole frames should not
// allocate at all (payloads are delivered in place).
import Benchmark
import Framing
import Glibc

private let payloadSizes = [64, 1024, 64 * 1024]
private let wireBytes = 1_000_000

private func sizeName(_ n: Int) -> String {
    n >= 1024 ? "\(n / 1024) KiB" : "\(n) B"
}

/// Payload bytes per frame such that a frame (header, optional key, payload)
/// is `frameSize` bytes, or nil if none is.
private func payloadLength(frameSize: Int, masked: Bool) -> Int? {
    let key = masked ? 4 : 0
    for header in [2, 4, 10] {
        let p = frameSize - header - key
        if p >= 0 && WebSocketEncoder.serverHeaderSize(payloadLength: p) == header { return p }
    }
    return nil
}

/// Exactly `total` bytes of binary frames carrying `payload` bytes each (the
/// last one shorter), masked as a client sends them or unmasked as a server
/// does. Returns the bytes and the number of frames.
private func frameStream(payload: Int, masked: Bool, total: Int) -> ([UInt8], Int) {
    let body = (0..<payload + 64).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    var out = [UInt8](repeating: 0, count: total)
    var offset = 0
    var frames = 0
    var key: UInt32 = 0x3D21_FA37
    out.withUnsafeMutableBytes { dst in
        func put(_ n: Int) {
            body.withUnsafeBytes { src in
                let p = UnsafeRawBufferPointer(rebasing: src[0..<n])
                if masked {
                    offset += WebSocketEncoder.writeClientFrame(
                        opcode: .binary, payload: p, maskKey: key, to: dst.baseAddress! + offset)
                    key = key &* 1_103_515_245 &+ 12345
                } else {
                    offset += WebSocketEncoder.writeServerHeader(
                        opcode: .binary, payloadLength: n, to: dst.baseAddress! + offset)
                    (dst.baseAddress! + offset).copyMemory(from: p.baseAddress!, byteCount: n)
                    offset += n
                }
                frames += 1
            }
        }
        let full = masked ? WebSocketEncoder.clientFrameSize(payloadLength: payload)
                          : WebSocketEncoder.serverHeaderSize(payloadLength: payload) + payload
        let smallest = masked ? 6 : 2
        while total - offset == full || total - offset >= full + smallest { put(payload) }
        // What is left (less than one full frame plus the smallest frame) is
        // one frame, or two when no frame has exactly that size.
        let rest = total - offset
        if rest > 0 {
            if let p = payloadLength(frameSize: rest, masked: masked) {
                put(p)
            } else {
                put(payloadLength(frameSize: rest / 2, masked: masked)!)
                put(payloadLength(frameSize: total - offset, masked: masked)!)
            }
        }
    }
    precondition(offset == total, "frame stream is \(offset) bytes, wanted \(total)")
    return (out, frames)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 5,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    for payload in payloadSizes {
        for masked in [true, false] {
            let side = masked ? "server, masked" : "client, unmasked"
            Benchmark(
                "Decode \(sizeName(payload)) frames (\(side)) bytes/s",
                configuration: .init(scalingFactor: .mega)
            ) { benchmark in
                var (stream, frames) = frameStream(payload: payload, masked: masked, total: benchmark.scaledIterations.count)
                let configuration = WebSocketDecoderConfiguration(expectMasked: masked)
                var decoder = WebSocketDecoder(configuration: configuration)
                var events = 0
                var bytes = 0
                benchmark.startMeasurement()
                // Unmasking is in place, so each pass flips the payloads
                // between masked and clear; binary frames are not validated.
                stream.withUnsafeMutableBytes { buffer in
                    let error = decoder.feed(buffer) { event in
                        if case .message(_, let payload, _) = event {
                            events &+= 1
                            bytes &+= payload.count
                        }
                    }
                    precondition(error == nil, "decode failed: \(String(describing: error))")
                }
                benchmark.stopMeasurement()
                precondition(events == frames, "\(events) events for \(frames) frames")
                blackHole(bytes)
            }
        }
    }

    for payload in payloadSizes {
        // One scaled iteration = one header written.
        Benchmark(
            "Encode writeServerHeader \(sizeName(payload)) headers/s",
            configuration: .init(scalingFactor: .mega)
        ) { benchmark in
            let out = UnsafeMutableRawPointer.allocate(byteCount: 16 * WebSocketEncoder.maxServerHeaderSize, alignment: 8)
            defer { out.deallocate() }
            var total = 0
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                total &+= WebSocketEncoder.writeServerHeader(
                    opcode: .binary, payloadLength: payload,
                    to: out + (i & 15) * WebSocketEncoder.maxServerHeaderSize)
            }
            benchmark.stopMeasurement()
            blackHole(total)
            blackHole(out.load(as: UInt8.self))
        }

        // Whole masked frames (header, key, masked copy of the payload)
        // filling exactly 1,000,000 bytes.
        Benchmark(
            "Encode writeClientFrame \(sizeName(payload)) bytes/s",
            configuration: .init(scalingFactor: .mega)
        ) { benchmark in
            let total = benchmark.scaledIterations.count
            let body = (0..<payload + 64).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let (reference, frames) = frameStream(payload: payload, masked: true, total: total)
            // The payload length of every frame, as frameStream laid them out.
            var lengths: [Int] = []
            reference.withUnsafeBytes { r in
                var o = 0
                while o < total {
                    let b = r[o + 1] & 0x7F
                    let (h, n): (Int, Int)
                    switch b {
                    case 126: (h, n) = (4, Int(r[o + 2]) << 8 | Int(r[o + 3]))
                    case 127: (h, n) = (10, (2..<10).reduce(0) { $0 << 8 | Int(r[o + $1]) })
                    default: (h, n) = (2, Int(b))
                    }
                    lengths.append(n)
                    o += h + 4 + n
                }
            }
            precondition(lengths.count == frames)
            let out = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 16)
            defer { out.deallocate() }
            var written = 0
            benchmark.startMeasurement()
            body.withUnsafeBytes { src in
                var key: UInt32 = 0x3D21_FA37
                for n in lengths {
                    written &+= WebSocketEncoder.writeClientFrame(
                        opcode: .binary, payload: UnsafeRawBufferPointer(rebasing: src[0..<n]), maskKey: key,
                        to: out + written)
                    key = key &* 1_103_515_245 &+ 12345
                }
            }
            benchmark.stopMeasurement()
            precondition(written == total)
            precondition(memcmp(out, reference, total) == 0, "encoded bytes differ from the reference stream")
        }
    }
}
