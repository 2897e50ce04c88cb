#!/usr/bin/env bash
# Core's own instructions per datagram: `wskudpctl bench` on the model backend under callgrind,
# the self cost of every `wskudp_core::` function summed and divided by the datagrams sent (the
# warm-up's included). Instructions, not time: the figure does not depend on the machine's load.
# The model's, the harness's and Linux's user-space instructions are printed beside it; the
# kernel's own send is not counted by callgrind.
#
# Usage: tests/core-instructions.sh [COUNT]   (default 50000 datagrams of 64 bytes per API)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-50000}"
if ! command -v valgrind >/dev/null; then
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    sudo_if_needed apt-get install -y -qq valgrind >/dev/null
fi
cargo build --locked --release -q -p wskudp-harness
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
printf '%-13s %12s %12s %14s %14s\n' api datagrams core/dgram model/dgram other/dgram
for api in sendmessages sendto zerocopy; do
    valgrind --tool=callgrind --callgrind-out-file="$out/$api.cg" \
        target/release/wskudpctl --backend model --front-door kmdf bench --size 64 \
        --count "$count" --inflight 4 --api "$api" --src 127.0.0.1 --json \
        >"$out/$api.json" 2>"$out/$api.err"
    # The warm-up sends min(inflight * batch * 4, count) datagrams first, batch 16 but for sendto.
    batch=16
    [ "$api" = sendto ] && batch=1
    warm=$((4 * batch * 4))
    [ "$warm" -gt "$count" ] && warm="$count"
    callgrind_annotate --threshold=100 "$out/$api.cg" 2>/dev/null | awk \
        -v api="$api" -v dgrams="$((count + warm))" '
        /^ *[0-9,]+ \(/ {
            n = $1; gsub(",", "", n)
            if ($0 ~ /PROGRAM TOTALS/) next
            if ($0 ~ /wskudp_core::/) core += n
            else if ($0 ~ /wskudp_kmodel::|crossbeam/) model += n
            else other += n
        }
        END { printf "%-13s %12d %12.0f %14.0f %14.0f\n", api, dgrams, core / dgrams, model / dgrams, other / dgrams }'
done
