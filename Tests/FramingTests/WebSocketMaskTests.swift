import Testing
import Framing

private func naiveMask(_ bytes: [UInt8], key: UInt32, phase: Int) -> [UInt8] {
    let keyBytes = [UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF)]
    return bytes.enumerated().map { $0.element ^ keyBytes[($0.offset + phase) % 4] }
}

@Suite struct WebSocketMaskTests {
    @Test func matchesBytewiseMaskingForEveryLengthPhaseAndAlignment() {
        var random = SplitMix64(seed: 3)
        let key: UInt32 = 0x37FA_213D
        for length in 0...70 {
            for phase in 0...3 {
                for misalignment in 0...7 {
                    let payload = random.bytes(length)
                    var storage = [UInt8](repeating: 0xAA, count: misalignment) + payload + [0xAA]
                    let newPhase = storage.withUnsafeMutableBytes { buffer in
                        webSocketUnmask(UnsafeMutableRawBufferPointer(rebasing: buffer[misalignment..<(misalignment + length)]),
                                        key: key, phase: phase)
                    }
                    #expect(Array(storage[misalignment..<(misalignment + length)]) == naiveMask(payload, key: key, phase: phase))
                    #expect(storage.last == 0xAA && storage.prefix(misalignment).allSatisfy { $0 == 0xAA })
                    #expect(newPhase == (phase + length) % 4)
                }
            }
        }
    }

    @Test func chunkedMaskingWithReturnedPhaseEqualsWholeMasking() {
        var random = SplitMix64(seed: 4)
        for _ in 0..<200 {
            let key = UInt32(truncatingIfNeeded: random.next())
            let payload = random.bytes(random.next(below: 300))
            var chunked = payload
            var phase = 0
            var start = 0
            while start < chunked.count {
                let end = min(chunked.count, start + 1 + random.next(below: 20))
                phase = chunked.withUnsafeMutableBytes {
                    webSocketUnmask(UnsafeMutableRawBufferPointer(rebasing: $0[start..<end]), key: key, phase: phase)
                }
                start = end
            }
            #expect(chunked == naiveMask(payload, key: key, phase: 0))
            #expect(phase == payload.count % 4)
        }
    }

    @Test func maskingTwiceRestoresThePayload() {
        var bytes = Array("Hello".utf8)
        bytes.withUnsafeMutableBytes { _ = webSocketUnmask($0, key: 0x37FA_213D, phase: 0) }
        #expect(bytes == [0x7F, 0x9F, 0x4D, 0x51, 0x58])  // RFC 6455 §5.7
        bytes.withUnsafeMutableBytes { _ = webSocketUnmask($0, key: 0x37FA_213D, phase: 0) }
        #expect(bytes == Array("Hello".utf8))
    }
}
