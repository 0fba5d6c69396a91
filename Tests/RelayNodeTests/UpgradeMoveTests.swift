import Glibc
import Framing
@testable import Reactor
@testable import RelayNode

/// An upgrade whose pod lives on another loop moves the connection there,
/// whole transport and all; a transport still holding bytes of its own
/// (TLS session tickets the socket has not taken yet) moves once they left.
@Suite struct UpgradeMoveTests {
    @Test func aConnectionMovesOnlyOnceItsTransportsOwnBytesHaveLeft() throws {
        let h = try RelayHarness(loops: 2)
        let pod = (0..<100).map { "move-\($0)" }.first { h.home(of: $0) == 1 }!
        let runner = try h.runner(pod, on: 1)
        let peer = try h.connect(sendBufferSize: 0, on: 0)
        let t = peer.transport
        t.holdsOutput = true
        // Bytes the transport took and the (full) socket has not.
        let own: [UInt8] = [0x17, 0x03, 0x03]
        own.withUnsafeBytes { raw in
            var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
            _ = t.writev(&iov, count: 1)
        }
        #expect(t.hasPendingOutput)
        var head = "GET /browser/relay?token=\(RelayHarness.token(pod: pod, runner: false)) HTTP/1.1\r\nHost: relay.test\r\n"
        head += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        t.peerWrite(Array(head.utf8))
        h.run()
        #expect(t.peerRead().isEmpty, "nothing can leave yet")
        #expect(!t.isClosed, "waiting, not refused")
        t.sendBufferSize = nil
        h.run()
        let got = t.peerRead()
        #expect(Array(got.prefix(3)) == own, "the transport's bytes first")
        let response = String(decoding: got.dropFirst(3), as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.1 101"), "then the upgrade, from the pod's loop: \(response.prefix(40))")
        #expect(h.server.hubs[1].counters.browsers.load(ordering: .relaxed) == 1, "the browser joined on the pod's loop")
        _ = runner
    }
}
