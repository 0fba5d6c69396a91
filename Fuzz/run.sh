#!/usr/bin/env bash
# Fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds the libFuzzer targets (with AddressSanitizer) and runs each for
# SECONDS (default 60); with TARGETs (e.g. `h2 grpc`), only those. The seeds
# in Fuzz/corpus/<target>/ are read only; what libFuzzer finds goes to
# Fuzz/.build/corpus/<target>/ (kept between runs, ignored by git). A crash
# or a broken invariant leaves its input in Fuzz/crashes/<target>-crash-<sha1>
# (reproduce: run the target binary on that file) and makes this script exit 1.
set -euo pipefail

# A trap goes to libFuzzer's handler (input saved, stack printed): Swift's own
# backtracer, under AddressSanitizer, reports a stack-buffer-underflow in its
# own memory server instead and leaves a swift-backtrace process behind.
export SWIFT_BACKTRACE=enable=no

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-60}"
scratch="$here/.build"

nice -n 10 swift build -c release --package-path "$here" --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

mkdir -p "$here/crashes"
failed=()
targets=(websocket-decoder http-head json jwt h2 grpc)
if [ "$#" -gt 1 ]; then targets=("${@:2}"); fi
for target in "${targets[@]}"; do
    binary="$scratch/release/fuzz-$target"
    work="$scratch/corpus/$target"
    log="$scratch/fuzz-$target.log"
    mkdir -p "$work"
    options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
             -artifact_prefix="$here/crashes/$target-")
    case "$target" in
        websocket-decoder) options+=(-max_len=8192) ;;
        # Every prefix is parsed: the work per input grows with its square.
        http-head) options+=(-max_len=2048 -dict="$here/dictionaries/http-head.dict") ;;
        # Every prefix of a valid document up to 1 KiB is parsed, a sample beyond.
        json) options+=(-max_len=4096 -dict="$here/dictionaries/json.dict") ;;
        # Each input is verified some 40 times (token, payload, header); real
        # tokens are a few hundred bytes.
        jwt) options+=(-max_len=2048 -dict="$here/dictionaries/jwt.dict") ;;
        # A whole server session per input (nghttp2 and our delegate), fed in
        # random splits, byte by byte for some.
        h2) options+=(-max_len=4096 -dict="$here/dictionaries/h2.dict") ;;
        # Three feeds (whole, chunked, byte by byte) and data(of:) per message.
        grpc) options+=(-max_len=4096 -dict="$here/dictionaries/grpc.dict") ;;
        *) echo "fuzz: unknown target $target" >&2; exit 2 ;;
    esac
    echo "== fuzz-$target for ${seconds} s (log: $log)"
    set +e
    nice -n 10 "$binary" "${options[@]}" "$work" "$here/corpus/$target" >"$log" 2>&1
    status=$?
    set -e
    grep -E "^#[0-9]+ +DONE|^stat::number_of_executed_units|^stat::peak_rss|^Done " "$log" || true
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        grep -E "invariant violated|ERROR: |SUMMARY: |Test unit written|^artifact_prefix" "$log" || tail -n 30 "$log"
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in $here/crashes/)"
    exit 1
fi
echo "fuzz: no crash in ${seconds} s per target"
