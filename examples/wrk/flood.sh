#!/usr/bin/env bash
# A guessing flood against the gated demo, on loopback: the server pinned to
# core 0, wrk pinned to core 1, alternating rounds of the store's own keys
# (answered 202) and of GUESSES well-formed keys the store does not hold
# (answered 401 invalid_api_key; no guess sent twice in a round). Prints each
# round's requests/s and server CPU per request, and the server's resident
# memory before the first flood and after the last.
#
#   bash examples/wrk/flood.sh [GUESSES] [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/wrk/lib.sh
need wrk taskset
guesses=${1:-1000000}
rounds=${2:-3}
seconds=${3:-5}
connections=${4:-32}
dir=$(mktemp -d)
cargo build --release --example loadtest
taskset -c 0 target/release/examples/loadtest --serve gated --addr 127.0.0.1:8083 \
    --keys-file "$dir/known" --guesses "$guesses" --guesses-file "$dir/guesses" > "$dir/out" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
ready "$dir/out"

rss() { awk '/^VmRSS/ { print $2 / 1024 " MiB" }' "/proc/$server/status"; }

run() {
    local before after out
    before=$(ticks "$server")
    out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s examples/wrk/rotate.lua \
        "http://127.0.0.1:8083" -- "$1")
    after=$(ticks "$server")
    awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
        / requests in / { requests = $1 }
        /^Requests\/sec/ { rate = $2 }
        /Non-2xx/ { refused = $NF }
        END { printf "%.0f req/s, %.2f µs CPU each, %d of %d refused", rate,
              (after - before) / hz * 1e6 / requests, refused, requests }' <<< "$out"
}

run "$dir/known" > /dev/null # warm-up
echo "resident before the flood: $(rss)"
for round in $(seq "$rounds"); do
    echo "round $round: known keys $(run "$dir/known"); guesses $(run "$dir/guesses")"
done
echo "resident after the flood: $(rss)"
