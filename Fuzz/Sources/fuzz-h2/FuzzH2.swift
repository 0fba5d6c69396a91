// libFuzzer target: a server HTTP2Session (nghttp2 behind Framing's sans-I/O
// wrapper) fed arbitrary client bytes in random splits, as a connection
// drives it: receive, then send, until it fails or finishes. The delegate
// answers every request with a small body through dataReady / sendData
// (NO_COPY: the 9-byte header, then its own bytes), sometimes with trailers,
// and consumes all DATA.
//
// Input layout: byte 0 picks options, bytes 1...8 seed the splits, the clock
// and the body sizes (SplitMix64), the rest is the client's byte stream.
// Shorter inputs are zero-padded for the options and seed.
//   byte 0 bit 0:   the valid client preface goes before the stream
//   byte 0 bit 1:   small settings (4 streams, 1000-byte stream window, 300-byte
//                   header lists, 2 CONTINUATIONs, 5 resets, 20 control frames,
//                   10 queued acks) so that every bound is within reach
//   byte 0 bit 2:   DATA is consumed at the end of each read, not at once
//   byte 0 bit 3:   every k-th output is refused (k = 2 + byte 0 >> 6): the
//                   socket is full; the next send must offer the same bytes
//   byte 0 bit 4:   bodies start deferred and are resumed after each read
//   byte 0 bit 5:   between reads, the server sometimes pings, resets a
//                   stream or starts a drain (GOAWAY)
//
// Besides crashes and AddressSanitizer reports, it traps when:
//   - what the session writes (frames, DATA headers plus our payload) does
//     not end on a frame boundary after a send, holds a frame longer than
//     16384 bytes, a frame type a server does not send, or DATA / HEADERS
//     on a stream the client never opened;
//   - a refused output or DATA frame is not offered again, identical, first
//     thing on the next send;
//   - a DATA header disagrees with its call (length, type, stream, flags),
//     asks for bytes dataReady did not offer, or ends a stream whose body
//     (or trailers) is not complete; dataReady is asked for 0 or > 16384;
//   - events are out of order for a stream: DATA or end of stream before its
//     request headers or after its end, anything after it closed, a second
//     header block without END_STREAM (trailers), a stream closed twice;
//   - a reported header list is over maxHeaderListSize (counting each U+FFFD
//     as one byte: HTTP2Header's Strings replace bytes that are not UTF-8);
//   - receive answers true after `failure` is set.
import Framing
import FuzzDriver

func fail(_ message: String) -> Never {
    fatalError("fuzz-h2: invariant violated: \(message)")
}

struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Sorted cut offsets in 1..<count: a few large pieces or many tiny ones.
func randomCuts(count: Int, _ random: inout SplitMix64) -> [Int] {
    guard count > 1 else { return [] }
    switch random.next(below: 4) {
    case 0:
        return []
    case 1:
        let pieces = random.next(below: min(count, 16))
        return Set((0..<pieces).map { _ in 1 + random.next(below: count - 1) }).sorted()
    case 2:
        var cuts: [Int] = []
        var position = 0
        while true {
            position += 1 + random.next(below: 24)
            guard position < count else { return cuts }
            cuts.append(position)
        }
    default:
        return Array(1..<count)     // one byte at a time
    }
}

let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

/// What a send offered: frame bytes, or a DATA frame's header and length.
enum Offer: Equatable {
    case output([UInt8])
    case data(stream: Int32, header: [UInt8], length: Int)
}

final class Server: HTTP2SessionDelegate {
    var session: HTTP2Session!
    let settings: HTTP2Settings
    var random: SplitMix64
    let lazyConsume: Bool
    let deferBodies: Bool
    let refuseEvery: Int

    // Output, parsed as it comes.
    var pending: [UInt8] = []
    var calls = 0
    var expectNext: Offer?
    var retried = false

    // Streams.
    var requested: Set<Int32> = []          // request headers seen
    var ended: Set<Int32> = []              // END_STREAM from the client
    var closed: Set<Int32> = []
    var unconsumed: [Int32: Int] = [:]
    var bodySize: [Int32: Int] = [:]
    var toOffer: [Int32: Int] = [:]         // body bytes not yet offered
    var offered: [Int32: Int] = [:]         // offered, not yet sent
    var sent: [Int32: Int] = [:]
    var withTrailers: Set<Int32> = []
    var bodyDone: Set<Int32> = []           // the last bytes were offered
    var deferred: Set<Int32> = []

    init(settings: HTTP2Settings, random: SplitMix64, lazyConsume: Bool, deferBodies: Bool, refuseEvery: Int) {
        self.settings = settings
        self.random = random
        self.lazyConsume = lazyConsume
        self.deferBodies = deferBodies
        self.refuseEvery = refuseEvery
        session = HTTP2Session(role: .server, settings: settings, delegate: self)
    }

    // MARK: Events

    func http2(_ s: HTTP2Session, headers: [HTTP2Header], stream: Int32, endStream: Bool, tooLarge: Bool) {
        if closed.contains(stream) { fail("headers on closed stream \(stream)") }
        // HTTP2Header holds Strings: bytes that are not UTF-8 (obs-text,
        // which nghttp2 lets through in values and :path) arrive as U+FFFD,
        // 3 bytes for 1 or more on the wire; count each as one.
        func wireSize(_ s: String) -> Int {
            s.unicodeScalars.reduce(0) { $0 + ($1 == "\u{FFFD}" ? 1 : String($1).utf8.count) }
        }
        let size = headers.reduce(0) { $0 + wireSize($1.name) + wireSize($1.value) + 32 }
        if size > Int(settings.maxHeaderListSize) { fail("a \(size)-byte header list reported, limit \(settings.maxHeaderListSize)") }
        if stream <= 0 || stream & 1 == 0 { fail("request headers on stream \(stream)") }
        if requested.contains(stream) {
            // Trailers.
            if !endStream { fail("a second header block without END_STREAM on \(stream)") }
            if ended.contains(stream) { fail("trailers after END_STREAM on \(stream)") }
            ended.insert(stream)
            return
        }
        requested.insert(stream)
        if endStream { ended.insert(stream) }
        if tooLarge {
            s.submitResponse(stream: stream, headers: [HTTP2Header(":status", "431")], body: false)
            return
        }
        let size2 = random.next(below: 4) == 0 ? random.next(below: 40_000) : random.next(below: 100)
        bodySize[stream] = size2
        toOffer[stream] = size2
        if random.next(below: 3) == 0 { withTrailers.insert(stream) }
        if deferBodies { deferred.insert(stream) }
        s.submitResponse(stream: stream, headers: [HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")], body: true)
    }

    func http2(_ s: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32) {
        if !requested.contains(stream) { fail("DATA before the headers of \(stream)") }
        if ended.contains(stream) { fail("DATA after END_STREAM on \(stream)") }
        if closed.contains(stream) { fail("DATA on closed stream \(stream)") }
        // Touch every byte (AddressSanitizer checks the buffer).
        var sum: UInt8 = 0
        for b in data { sum &+= b }
        _ = sum
        if lazyConsume {
            unconsumed[stream, default: 0] += data.count
        } else {
            s.consume(stream: stream, bytes: data.count)
        }
    }

    func http2(_ s: HTTP2Session, endOfStream stream: Int32) {
        if !requested.contains(stream) { fail("END_STREAM before the headers of \(stream)") }
        if ended.contains(stream) { fail("END_STREAM twice on \(stream)") }
        if closed.contains(stream) { fail("END_STREAM on closed stream \(stream)") }
        ended.insert(stream)
    }

    func http2(_ s: HTTP2Session, closed stream: Int32, errorCode: UInt32) {
        if closed.contains(stream) { fail("stream \(stream) closed twice") }
        closed.insert(stream)
        unconsumed[stream] = nil
        deferred.remove(stream)
    }

    func http2PingAcknowledged(_ s: HTTP2Session) {}

    func http2(_ s: HTTP2Session, goAway errorCode: UInt32, lastStream: Int32) {}

    // MARK: Output

    /// The retry of a refused offer is checked and taken; else every
    /// `refuseEvery`-th offer is refused.
    func take(_ offer: Offer) -> Bool {
        calls += 1
        if let expected = expectNext {
            if offer != expected { fail("refused \(expected) but then offered \(offer)") }
            expectNext = nil
            retried = true
            return true
        }
        if refuseEvery > 0 && calls % refuseEvery == 0 {
            expectNext = offer
            return false
        }
        return true
    }

    func http2(_ s: HTTP2Session, output bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.isEmpty { fail("empty output") }
        guard take(.output(Array(bytes))) else { return false }
        pending += bytes
        return true
    }

    func http2(_ s: HTTP2Session, dataReady stream: Int32, max: Int) -> HTTP2DataReady {
        if max <= 0 || max > 16384 { fail("dataReady asked for \(max) bytes on \(stream)") }
        if closed.contains(stream) { fail("dataReady on closed stream \(stream)") }
        guard let left = toOffer[stream] else { fail("dataReady on \(stream), which has no body") }
        if bodyDone.contains(stream) { fail("dataReady on \(stream) after its last bytes") }
        if deferred.contains(stream) { return .deferred }
        let n = min(max, left)
        toOffer[stream] = left - n
        offered[stream, default: 0] += n
        guard n == left else { return .bytes(n, end: false, trailers: false) }
        bodyDone.insert(stream)
        if withTrailers.contains(stream) {
            if !s.submitTrailers(stream: stream, headers: [HTTP2Header("grpc-status", "0")]) { fail("submitTrailers refused on \(stream)") }
            return .bytes(n, end: true, trailers: true)
        }
        return .bytes(n, end: true, trailers: false)
    }

    func http2(_ s: HTTP2Session, sendData stream: Int32, frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
        if frameHeader.count != 9 { fail("a \(frameHeader.count)-byte DATA header") }
        let header = Array(frameHeader)
        let headerLength = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        let headerStream = Int32(bitPattern: UInt32(header[5] & 0x7F) << 24 | UInt32(header[6]) << 16 | UInt32(header[7]) << 8 | UInt32(header[8]))
        if header[3] != 0 || headerLength != length || headerStream != stream || header[4] & ~UInt8(0x1) != 0 {
            fail("DATA header \(header) for \(length) bytes on \(stream)")
        }
        if closed.contains(stream) { fail("sendData on closed stream \(stream)") }
        guard take(.data(stream: stream, header: header, length: length)) else { return false }
        let available = offered[stream, default: 0]
        if length > available { fail("sendData of \(length) bytes on \(stream), \(available) offered") }
        offered[stream] = available - length
        sent[stream, default: 0] += length
        if header[4] & 0x1 != 0 {
            if withTrailers.contains(stream) { fail("END_STREAM on the DATA of \(stream), which has trailers") }
            if !bodyDone.contains(stream) || offered[stream] != 0 || sent[stream] != bodySize[stream] {
                fail("END_STREAM on \(stream) after \(sent[stream] ?? 0) of \(bodySize[stream] ?? -1) bytes")
            }
        }
        pending += header
        pending += repeatElement(UInt8(truncatingIfNeeded: stream), count: length)
        return true
    }

    /// Whole frames of `pending`, checked and removed; they must end on a boundary.
    func checkOutput() {
        var i = 0
        while i < pending.count {
            guard pending.count - i >= 9 else { fail("output ends inside a frame header") }
            let length = Int(pending[i]) << 16 | Int(pending[i + 1]) << 8 | Int(pending[i + 2])
            let type = pending[i + 3]
            let stream = Int32(bitPattern: UInt32(pending[i + 5] & 0x7F) << 24 | UInt32(pending[i + 6]) << 16 | UInt32(pending[i + 7]) << 8 | UInt32(pending[i + 8]))
            if length > 16384 { fail("a \(length)-byte frame of type \(type)") }
            guard pending.count - i - 9 >= length else { fail("output ends inside a frame (type \(type), \(length) bytes)") }
            switch type {
            case 0x0, 0x1, 0x9:
                if !requested.contains(stream) { fail("frame type \(type) on stream \(stream), never requested") }
            case 0x3, 0x8:
                break
            case 0x4, 0x6, 0x7:
                if stream != 0 { fail("frame type \(type) on stream \(stream)") }
            default:
                fail("frame type \(type) from a server")
            }
            i += 9 + length
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// send(), and again while a refused offer waits: each retry must
    /// offer it first (a later offer of the same send may be refused anew).
    func sendAll() {
        session.send()
        var sends = 1
        while let waiting = expectNext {
            retried = false
            session.send()
            sends += 1
            if !retried { fail("a refused \(waiting) was not offered again") }
            if sends > 100_000 { fail("no end to sending") }
        }
        checkOutput()
    }

    /// Between reads: lazy consumes, deferred bodies resume, sometimes our own frames.
    func afterRead(actions: Bool) {
        if lazyConsume {
            for (stream, n) in unconsumed { session.consume(stream: stream, bytes: n) }
            unconsumed.removeAll()
        }
        if !deferred.isEmpty {
            for stream in deferred.sorted() { session.resumeData(stream: stream) }
            deferred.removeAll()
        }
        if actions {
            switch random.next(below: 16) {
            case 0: session.ping()
            case 1:
                if let stream = requested.subtracting(closed).min() { session.resetStream(stream, code: .cancel) }
            case 2: session.goAway()
            default: break
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var control = [UInt8](repeating: 0, count: 9)
    for i in 0..<min(size, 9) { control[i] = data[i] }
    let options = control[0]
    var seed: UInt64 = 0
    for i in 1...8 { seed = seed << 8 | UInt64(control[i]) }
    var random = SplitMix64(seed: seed)

    var stream: [UInt8] = options & 1 != 0 ? preface : []
    if size > 9 { stream += UnsafeBufferPointer(start: data + 9, count: size - 9) }

    var settings = HTTP2Settings()
    if options & 2 != 0 {
        settings.maxConcurrentStreams = 4
        settings.streamWindow = 1000
        settings.connectionWindow = 65535
        settings.maxHeaderListSize = 300
        settings.enableConnectProtocol = options & 0x40 == 0
        settings.maxContinuations = 2
        settings.resetBurst = 5
        settings.resetsPerSecond = 2
        settings.controlBurst = 20
        settings.controlFramesPerSecond = 10
        settings.maxOutboundAcks = 10
    }
    let server = Server(settings: settings, random: SplitMix64(seed: random.next()),
                        lazyConsume: options & 4 != 0, deferBodies: options & 16 != 0,
                        refuseEvery: options & 8 != 0 ? 2 + Int(options >> 6) : 0)
    let session = server.session!
    server.sendAll()

    var now: UInt64 = 1_000_000_000
    var start = 0
    for end in randomCuts(count: stream.count, &random) + [stream.count] {
        let count = end - start
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { piece.deallocate() }
        stream.withUnsafeBytes { piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        start = end
        switch random.next(below: 8) {
        case 0: now += UInt64(random.next(below: 2_000)) * 1_000_000       // up to 2 s
        case 1: now += UInt64(random.next(below: 20)) * 1_000_000
        default: break
        }
        let alive = session.receive(UnsafeRawBufferPointer(piece), now: now)
        if session.failure != nil && alive { fail("receive answered true with failure \(session.failure!)") }
        server.afterRead(actions: options & 32 != 0)
        server.sendAll()
        if session.failure != nil || session.isFinished { break }
    }
    if session.failure == nil && !session.isFinished {
        session.goAway()
        server.sendAll()
    }
    return 0
}

/// main(), as SwiftPM links it: libFuzzer's driver on `fuzz`.
@_cdecl("fuzz_h2_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    relay_fuzz_main(argc, argv) { data, size in
        if let data { return fuzz(data, size) }
        var empty: UInt8 = 0
        return withUnsafePointer(to: &empty) { fuzz($0, 0) }
    }
}
