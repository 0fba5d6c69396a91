#!/bin/bash
# What a TLS connection costs the relay, in instructions: the relay (with
# --tls) under valgrind --tool=callgrind while `openssl s_time` opens
# connections, one counted span per mode (callgrind_control -z, s_time for
# 6 s, callgrind_control -d); prints each mode's connections and Ir per
# connection, and keeps the callgrind files in the current directory
# (hs.out.1 …, one per mode, for callgrind_annotate).
#
#   Benchmarks/tls_handshake_callgrind.sh RELAY CERT KEY [PORT]
#
# valgrind 3.19 cannot read the DWARF 5 that Swift 6 emits: it runs a copy
# of RELAY without debug info (relay-cg, symbols kept).
set -u
RELAY=$1; CERT=$2; KEY=$3; PORT=${4:-18443}
objcopy --strip-debug "$RELAY" relay-cg
rm -f hs.out hs.out.*
valgrind --tool=callgrind --callgrind-out-file=hs.out ./relay-cg --port "$PORT" --host 127.0.0.1 --jwt-secret s \
    --log-level warning --tls --tls-cert "$CERT" --tls-key "$KEY" > /dev/null 2>&1 &
VP=$!
for _ in $(seq 1 120); do curl -sk "https://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.5; done
i=0
for mode in "-new -tls1_2" "-reuse -tls1_2" "-new"; do
    i=$((i + 1))
    callgrind_control -z $VP > /dev/null
    n=$(openssl s_time -connect "127.0.0.1:$PORT" $mode -time 6 | sed -n 's/^\([0-9]*\) connections in [0-9.]*s;.*/\1/p')
    callgrind_control -d $VP > /dev/null
    ir=$(sed -n 's/^totals: //p' hs.out.$i)
    echo "s_time $mode: $n connections, $ir Ir, $((ir / n)) Ir per connection (hs.out.$i)"
done
kill -INT $VP
wait $VP
