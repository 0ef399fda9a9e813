#!/usr/bin/env bash
# What each refusal costs the gated server, against what an admitted
# request costs it: the demo API behind the gate (as examples/wrk/run.sh
# serves it, pinned to core 0) driven by wrk (pinned to core 1) in rounds
# alternating between an admitted `POST /v1/track` (the 10 000 keys in
# turn) and each refusal: no key (401 missing_api_key), well-formed keys
# the store does not hold (401 invalid_api_key), a route asking a scope no
# key has (403 insufficient_scope), a route whose daily token every
# project has spent and one whose calendar day's one request every project
# has made (both 429 rate_limited), and a body one byte over the
# route's 8 KiB cap (413 payload_too_large; the gate does not read a body
# it refused for its size, so it closes the connection and wrk connects
# again). Prints each run's requests/s, the server's CPU time per request
# (user + system, from /proc) and how many responses were not 2xx, then
# the median over the rounds of each refusal's CPU per request over the
# admitted one's. Needs wrk and taskset.
#
#   bash examples/wrk/refusals.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-5}
connections=${3:-32}
source examples/wrk/lib.sh
need wrk taskset
dir=$(mktemp -d)
cargo build --release --example loadtest
taskset -c 0 target/release/examples/loadtest --serve gated --addr 127.0.0.1:8084 \
    --keys-file "$dir/known" --guesses 10000 --guesses-file "$dir/guesses" > "$dir/out" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
ready "$dir/out"

# One wrk run with the keys of file $1 and the environment given after it
# (see rotate.lua): "requests/s µs-of-server-CPU-per-request
# responses-not-2xx requests".
run() {
    local keys=$1 before after out
    shift
    before=$(ticks "$server")
    out=$(env "$@" taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" \
        -s examples/wrk/rotate.lua "http://127.0.0.1:8084" -- "$keys" 2>&1)
    after=$(ticks "$server")
    awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
        / requests in / { requests = $1 }
        /^Requests\/sec/ { rate = $2 }
        /Non-2xx/ { refused = $NF }
        END { printf "%.0f %.2f %d %d", rate, (after - before) / hz * 1e6 / requests,
              refused, requests }' <<< "$out"
}

names=(missing unknown scope bucket window size)
files=("$dir/known" "$dir/guesses" "$dir/known" "$dir/known" "$dir/known" "$dir/known")
cases=(
    TOLLGATE_NO_KEY=1
    TOLLGATE_PATH=/v1/track
    TOLLGATE_PATH=/v1/sudo
    TOLLGATE_PATH=/v1/tight
    TOLLGATE_PATH=/v1/spent
    TOLLGATE_BODY_BYTES=8193
)
# Spends every project's daily token and request, and warms the server.
run "$dir/known" TOLLGATE_PATH=/v1/tight > /dev/null
run "$dir/known" TOLLGATE_PATH=/v1/spent > /dev/null
run "$dir/known" TOLLGATE_PATH=/v1/track > /dev/null
declare -A ratios
for round in $(seq "$rounds"); do
    read -r a acpu arefused arequests <<< "$(run "$dir/known" TOLLGATE_PATH=/v1/track)"
    line="round $round: admitted $a req/s ($acpu µs CPU each, $arefused of $arequests not 2xx)"
    for i in "${!names[@]}"; do
        read -r r rcpu refused requests <<< "$(run "${files[$i]}" "${cases[$i]}")"
        ratio=$(awk -v r="$rcpu" -v a="$acpu" 'BEGIN { printf "%.3f", r / a }')
        ratios[${names[$i]}]+="$ratio "
        line+="; ${names[$i]} $r req/s ($rcpu µs, $refused of $requests refused, $ratio of admitted)"
    done
    echo "$line"
done
for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    echo "median CPU per request, $name / admitted: $(printf '%s\n' ${ratios[$name]} | median)"
done
