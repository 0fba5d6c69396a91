import Testing
import Histogram
@testable import LoadGen

@Suite struct LatencyRecorderTests {
    @Test func everyValueLandsInABucketWithinATenthOfAPercent() {
        var values: [UInt64] = Array(0...5000)
        var v: UInt64 = 5000
        while v < 200_000_000 { values.append(v); values.append(v + 1); v = v * 3 / 2 + 7 }
        for value in values {
            let index = LatencyRecorder.index(value)
            #expect(index >= 0 && index < LatencyRecorder.bucketCount)
            let low = LatencyRecorder.value(at: index)
            if value < 1 << 27 {
                // The bucket's smallest value is at most the value, and within 0.1% of it.
                #expect(low <= value && value - low <= value / 1024, "value \(value) -> bucket \(index) at \(low)")
            } else {
                #expect(index == LatencyRecorder.bucketCount - 1)
            }
        }
        // Buckets are in value order.
        for i in 1..<LatencyRecorder.bucketCount {
            #expect(LatencyRecorder.value(at: i) > LatencyRecorder.value(at: i - 1))
        }
    }

    @Test func foldingGivesTheHistogramTheSameCountsAndPercentiles() {
        let recorder = LatencyRecorder()
        var direct = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var x: UInt64 = 12345
        for _ in 0..<100_000 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let value = (x >> 40) % 50_000 + (x >> 60 == 0 ? 2_000_000 : 0)   // a body and a far tail
            recorder.record(value)
            _ = direct.record(value)
        }
        var folded = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        recorder.fold(into: &folded)
        #expect(folded.totalCount == direct.totalCount)
        for p in [50.0, 90.0, 99.0, 99.9, 100.0] {
            let a = Double(folded.valueAtPercentile(p)), b = Double(direct.valueAtPercentile(p))
            #expect(abs(a - b) <= b * 0.002 + 1, "p\(p): folded \(a), direct \(b)")
        }
    }
}
