import Glibc
import Logging
import Framing
@testable import Reactor
@testable import RelayNode

/// HTTP/2 on real threads: one h2c connection, accepted by one of two
/// loops, carries runners and browsers of pods homed on both. So some
/// runners go through a `RunnerBridge` to the other loop and some browsers
/// through a mirror: the cross-thread paths `scripts/tsan.sh` checks.
@Suite(.serialized) struct HTTP2MultiLoopTests {
    /// A blocking h2c client on a socket, on the test's thread.
    final class Client: HTTP2SessionDelegate {
        let fd: Int32
        private var session: HTTP2Session!
        private(set) var data: [Int32: [UInt8]] = [:]
        private(set) var status: [Int32: String] = [:]
        private var out: [Int32: [UInt8]] = [:]

        init(port: Int) throws {
            fd = try blockingLoopbackSocket(port: port)
            session = HTTP2Session(role: .client, delegate: self)
            session.send()
        }

        deinit { Glibc.close(fd) }

        func webSocket(_ path: String) -> Int32 {
            let id = session.submitRequest(headers: [
                HTTP2Header(":method", "CONNECT"), HTTP2Header(":protocol", "websocket"), HTTP2Header(":scheme", "http"),
                HTTP2Header(":path", path), HTTP2Header(":authority", "t")], body: true)
            out[id] = []
            session.send()
            return id
        }

        func send(_ stream: Int32, _ message: [UInt8]) {
            out[stream]! += Peer.clientFrame(.binary, message)
            session.resumeData(stream: stream)
            session.send()
        }

        /// Reads until `done` holds (or the deadline passes).
        func read(until done: () -> Bool) {
            var buf = [UInt8](repeating: 0, count: 65536)
            while !done() {
                let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { return }
                buf.withUnsafeBytes { _ = session.receive(UnsafeRawBufferPointer(rebasing: $0[..<n]), now: 0) }
                session.send()
            }
        }

        func messages(_ stream: Int32) -> [[UInt8]] {
            var decoder = WebSocketDecoder(configuration: .init(expectMasked: false, maxMessageSize: 1 << 20))
            var got: [[UInt8]] = []
            var bytes = data[stream] ?? []
            bytes.withUnsafeMutableBytes { b in
                _ = decoder.feed(b) { if case .message(_, let payload, _) = $0 { got.append(Array(payload)) } }
            }
            return got
        }

        func http2(_ s: HTTP2Session, headers: [HTTP2Header], stream: Int32, endStream: Bool, tooLarge: Bool) {
            if let st = headers.value(":status") { status[stream] = st }
        }

        func http2(_ s: HTTP2Session, data bytes: UnsafeRawBufferPointer, stream: Int32) {
            data[stream, default: []] += bytes
            s.consume(stream: stream, bytes: bytes.count)
        }

        func http2(_ s: HTTP2Session, closed stream: Int32, errorCode: UInt32) {}

        func http2(_ s: HTTP2Session, output bytes: UnsafeRawBufferPointer) -> Bool {
            var off = 0
            while off < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
                if n <= 0 { return true }
                off += n
            }
            return true
        }

        func http2(_ s: HTTP2Session, dataReady stream: Int32, max: Int) -> HTTP2DataReady {
            let n = min(max, out[stream]?.count ?? 0)
            return n == 0 ? .deferred : .bytes(n, end: false, trailers: false)
        }

        func http2(_ s: HTTP2Session, sendData stream: Int32, frameHeader: UnsafeRawBufferPointer, length: Int) -> Bool {
            let bytes = Array(frameHeader) + out[stream]!.prefix(length)
            out[stream]!.removeFirst(length)
            return bytes.withUnsafeBytes { http2(s, output: $0) }
        }
    }

    @Test func runnersAndBrowsersOfPodsOnBothLoopsShareOneConnection() throws {
        try withRealServer { server in
            let pods = (0..<4).map { "h2-multi-\($0)" }
            #expect(Set(pods.map { PodHub.hash($0) % 2 }).count == 2, "the pods live on both loops")
            let c = try Client(port: server.port)
            var runners: [Int32] = []
            var browsers: [[Int32]] = []
            for pod in pods {
                runners.append(c.webSocket("/runner/relay?token=\(RelayHarness.token(pod: pod, runner: true))"))
                browsers.append((0..<3).map { _ in c.webSocket("/browser/relay?token=\(RelayHarness.token(pod: pod, runner: false))") })
            }
            let all = runners + browsers.flatMap { $0 }
            c.read { all.allSatisfy { c.status[$0] != nil } }
            #expect(all.allSatisfy { c.status[$0] == "200" })
            let output = RelayFrameType.output.rawValue
            for round in 0..<50 {
                for r in runners { c.send(r, [output, UInt8(round)]) }
            }
            let want = (0..<50).map { [output, UInt8($0)] }
            c.read { browsers.flatMap { $0 }.allSatisfy { c.messages($0).filter { $0.first == output }.count >= 50 } }
            for (i, bs) in browsers.enumerated() {
                for b in bs { #expect(c.messages(b).filter { $0.first == output } == want, "pod \(i), stream \(b)") }
                c.send(bs[1], [RelayFrameType.input.rawValue, UInt8(i)])
            }
            let input = RelayFrameType.input.rawValue
            c.read { runners.allSatisfy { c.messages($0).contains { $0.first == input } } }
            for (i, r) in runners.enumerated() {
                #expect(c.messages(r).filter { $0.first == input } == [[input, UInt8(i)]], "runner of pod \(i)")
            }
            // Read from this thread while the loops run.
            #expect(server.transports.open(.wsOverH2) == all.count)
            #expect(AdminReport.stats(server.hubs, transports: server.transports).contains("\"ws-over-h2\":\(all.count)"))
        }
    }
}
