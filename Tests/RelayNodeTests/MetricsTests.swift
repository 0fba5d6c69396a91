import Framing
@testable import RelayNode

/// /metrics through swift-prometheus: the loops' counters summed in, and
/// the handshake-time histogram observed on the loop's clock.
@Suite struct MetricsTests {
    func scrape(_ h: RelayHarness) throws -> String {
        let peer = try h.connect()
        peer.transport.peerWrite(Array("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
        h.run()
        _ = peer.status
        return peer.responseHead
    }

    @Test func countersAndTheHandshakeHistogram() throws {
        let h = try RelayHarness()
        let runner = try h.runner("p")
        _ = try h.browser("p")
        _ = try h.browser("p")
        for _ in 0..<3 { runner.send(.output, [1]) }
        // A client that takes 300 ms to send its head.
        let slow = try h.connect()
        h.advance(seconds: 0.3)
        slow.transport.peerWrite(Array("GET /health HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
        h.run()
        let text = try scrape(h)
        #expect(text.contains("relay_deliveries_total 6"))
        #expect(text.contains(#"relay_connections{role="browser"} 2"#))
        #expect(text.contains(#"relay_handshake_duration_seconds_bucket{le="0.1"} 4"#), "four heads came at once")
        #expect(text.contains(#"relay_handshake_duration_seconds_bucket{le="0.5"} 5"#), "one took 300 ms")
        #expect(text.contains("relay_handshake_duration_seconds_count 5"))
        // Scraped again: counters are set, not added up twice.
        runner.send(.output, [2])
        let again = try scrape(h)
        #expect(again.contains("relay_deliveries_total 8"))
    }
}
