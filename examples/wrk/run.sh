#!/usr/bin/env bash
# The demo API bare and behind the gate, each served by a process of its own
# pinned to core 0, driven in alternating rounds by wrk pinned to core 1,
# on loopback: prints each round's requests/s and the median ratio
# gated/bare. Needs wrk (apt-get install wrk) and taskset.
#
#   bash examples/wrk/run.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-5}
connections=${3:-32}
keys=$(mktemp)
cargo build --release --example loadtest
server=target/release/examples/loadtest

taskset -c 0 "$server" --serve bare --addr 127.0.0.1:8080 > "$keys.bare.out" &
bare=$!
taskset -c 0 "$server" --serve gated --addr 127.0.0.1:8081 --keys-file "$keys" > "$keys.gated.out" &
gated=$!
trap 'kill $bare $gated 2>/dev/null; rm -f "$keys" "$keys".*' EXIT
until grep -q ready "$keys.bare.out" 2>/dev/null && grep -q ready "$keys.gated.out" 2>/dev/null; do
    sleep 0.2
done

rate() {
    taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s examples/wrk/rotate.lua \
        "http://$1" -- "$keys" | awk '/^Requests\/sec/ { print $2 }'
}

ratios=()
for round in $(seq "$rounds"); do
    b=$(rate 127.0.0.1:8080)
    g=$(rate 127.0.0.1:8081)
    ratio=$(awk -v g="$g" -v b="$b" 'BEGIN { printf "%.3f", g / b }')
    echo "round $round: bare $b req/s, gated $g req/s, gated/bare $ratio"
    ratios+=("$ratio")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
    m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "median gated/bare over %d rounds: %.3f\n", NR, m }'
