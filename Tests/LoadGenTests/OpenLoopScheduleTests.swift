import Testing
@testable import LoadGen

/// The open-loop schedule, on made-up clock values: how many frames a rate
/// gives in a time, their stamps, and the waits between them.
@Suite struct OpenLoopScheduleTests {
    let s = OpenLoopSchedule(rate: 500, start: 1_000_000_000)

    @Test func frameZeroIsDueAtOnceAndRateFramesPerSecondFollow() {
        #expect(s.due(at: s.start) == 1)
        #expect(s.due(at: s.start + 1_999_999) == 1)
        #expect(s.due(at: s.start + 2_000_000) == 2)
        // 2.5 s at 500/s: frames 0…1250 are due.
        #expect(s.due(at: s.start + 2_500_000_000) == 1251)
    }

    @Test func framesAreStampedWhenTheyWereDue() {
        #expect(s.intended(0) == s.start)
        #expect(s.intended(500) == s.start + 1_000_000_000)
        for k: UInt64 in [1, 7, 499, 1250] {
            #expect(s.due(at: s.intended(k)) == k + 1, "frame \(k) is due at its own stamp")
        }
    }

    @Test func theSenderSleepsUntilTheNextFrameButAtLeastATick() {
        #expect(s.wait(sent: 1, now: s.start) == 2_000_000)
        #expect(s.wait(sent: 1, now: s.start + 1_950_000) == OpenLoopSchedule.minimumTick)
        #expect(s.wait(sent: 1, now: s.start + 5_000_000) == OpenLoopSchedule.minimumTick, "late: go at once (one tick)")
        let fast = OpenLoopSchedule(rate: 1_000_000, start: 0)
        #expect(fast.wait(sent: 10, now: 0) == OpenLoopSchedule.minimumTick, "fast rates go in bursts")
    }
}
