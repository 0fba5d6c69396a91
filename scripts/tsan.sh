#!/usr/bin/env bash
# The unit tests that cross threads (event loops, mailboxes, connection
# hand-over between loops, counters read from other threads) under
# ThreadSanitizer, in a build folder of their own. Any report fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scratch=.build-tsan
log="$(mktemp)"
if ! swift build --build-tests --sanitize=thread --scratch-path "$scratch" >"$log" 2>&1; then
    grep -E "error" "$log" | head -20
    echo "tsan: build failed (log: $log)" >&2
    exit 1
fi
# halt_on_error: the first report fails the test process.
if ! TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    swift test --skip-build --sanitize=thread --scratch-path "$scratch" --no-parallel \
        --filter 'ReactorTests|RelayNodeTests|TLSTests' >"$log" 2>&1; then
    grep -A40 "WARNING: ThreadSanitizer" "$log" | head -80 || tail -40 "$log"
    echo "tsan: failed (log: $log)" >&2
    exit 1
fi
if grep -q "ThreadSanitizer" "$log"; then
    grep -A40 "WARNING: ThreadSanitizer" "$log" | head -80
    echo "tsan: reports (log: $log)" >&2
    exit 1
fi
grep -E "Test run with" "$log" || true
echo "tsan: no reports"
rm -f "$log"
