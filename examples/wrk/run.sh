#!/usr/bin/env bash
# The demo API bare, behind the gate, and behind what a user would assemble
# instead from tower-http and tower_governor (the keyed peer, with its
# rate-limit headers), each served by a process of its own pinned to core 0,
# driven in alternating rounds by wrk pinned to core 1, on loopback: prints
# each round's requests/s and the server's CPU time per request (user +
# system, from /proc), and the medians: gated/bare, peer/bare, and the CPU
# time each adds to a request. Needs wrk (apt-get install wrk) and taskset.
#
#   bash examples/wrk/run.sh [ROUNDS] [SECONDS] [CONNECTIONS] [BUSY_NS] [ROUTE]
#
# With BUSY_NS (0: none), a fourth server joins the rounds: the bare one
# spinning BUSY_NS of CPU on each request (`loadtest --busy-ns`), to see
# what a server slower by exactly that much pays beyond it under the same
# client. ROUTE `track` (the default) sends `POST /v1/track` with the keys
# (examples/wrk/rotate.lua); `health` sends the public `GET /health`, no
# key, which the gate and the peer rate limit by the client's address.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-5}
connections=${3:-32}
busy_ns=${4:-0}
route=${5:-track}
case "$route" in
    track | health) ;;
    *) echo "$0: ROUTE is track or health, not $route" >&2; exit 2 ;;
esac
source examples/wrk/lib.sh
need wrk taskset
keys=$(mktemp)
cargo build --release --example loadtest
server=target/release/examples/loadtest

taskset -c 0 "$server" --serve bare --addr 127.0.0.1:8080 > "$keys.bare.out" &
bare=$!
taskset -c 0 "$server" --serve gated --addr 127.0.0.1:8081 --keys-file "$keys" > "$keys.gated.out" &
gated=$!
taskset -c 0 "$server" --serve peer --addr 127.0.0.1:8082 --keys-file "$keys.peer" > "$keys.peer.out" &
peer=$!
servers=(bare gated peer)
busy=
if [ "$busy_ns" -gt 0 ]; then
    taskset -c 0 "$server" --serve bare --busy-ns "$busy_ns" --addr 127.0.0.1:8083 > "$keys.busy.out" &
    busy=$!
    servers+=(busy)
fi
trap 'kill $bare $gated $peer $busy 2>/dev/null; rm -f "$keys" "$keys".*' EXIT
for which in "${servers[@]}"; do
    ready "$keys.$which.out"
done

# How often wrk went to sleep waiting for responses (its voluntary context
# switches, from GNU time when installed): each time, the server's next
# write must wake it, which the server pays for (on a VM, an IPI).
if [ -x /usr/bin/time ]; then
    timed=(/usr/bin/time -f 'sleeps %w')
else
    timed=()
fi

# One wrk run against port $1 of server $2 with the keys of file $3:
# "requests/s µs-of-server-CPU-per-request client-sleeps-per-request".
run() {
    local before after out target
    if [ "$route" = health ]; then
        target=("http://127.0.0.1:$1/health")
    else
        target=(-s examples/wrk/rotate.lua "http://127.0.0.1:$1" -- "$3")
    fi
    before=$(ticks "$2")
    out=$("${timed[@]}" taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" "${target[@]}" 2>&1)
    after=$(ticks "$2")
    awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
        / requests in / { requests = $1 }
        /^Requests\/sec/ { rate = $2 }
        /^sleeps / { sleeps = $2 }
        END {
            printf "%.0f %.2f %s", rate, (after - before) / hz * 1e6 / requests,
                sleeps == "" ? "-" : sprintf("%.3f", sleeps / requests)
        }' <<< "$out"
}

ratios=() added=() peer_ratios=() peer_added=() sleeps=() busy_ratios=() busy_beyond=() busy_sleeps=()
for round in $(seq "$rounds"); do
    read -r b bcpu bsleeps <<< "$(run 8080 "$bare" "$keys")"
    read -r g gcpu gsleeps <<< "$(run 8081 "$gated" "$keys")"
    read -r p pcpu psleeps <<< "$(run 8082 "$peer" "$keys.peer")"
    ratio=$(awk -v g="$g" -v b="$b" 'BEGIN { printf "%.3f", g / b }')
    peer_ratio=$(awk -v p="$p" -v b="$b" 'BEGIN { printf "%.3f", p / b }')
    echo "round $round: bare $b req/s ($bcpu µs CPU each), gated $g ($gcpu µs), peer $p ($pcpu µs); gated/bare $ratio, peer/bare $peer_ratio; wrk slept per request: bare $bsleeps, gated $gsleeps, peer $psleeps"
    ratios+=("$ratio")
    peer_ratios+=("$peer_ratio")
    added+=("$(awk -v g="$gcpu" -v b="$bcpu" 'BEGIN { print g - b }')")
    peer_added+=("$(awk -v p="$pcpu" -v b="$bcpu" 'BEGIN { print p - b }')")
    sleeps+=("$bsleeps $gsleeps $psleeps")
    if [ -n "$busy" ]; then
        read -r s scpu ssleeps <<< "$(run 8083 "$busy" "$keys")"
        busy_ratios+=("$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.3f", s / b }')")
        # The CPU the busy server adds beyond its BUSY_NS.
        busy_beyond+=("$(awk -v s="$scpu" -v b="$bcpu" -v n="$busy_ns" 'BEGIN { print s - b - n / 1000 }')")
        busy_sleeps+=("$ssleeps")
        echo "        busy ($busy_ns ns a request): $s req/s ($scpu µs CPU each), busy/bare ${busy_ratios[-1]}; wrk slept per request: $ssleeps"
    fi
done
echo "route: $route"
echo "median over $rounds rounds: gated/bare $(printf '%s\n' "${ratios[@]}" | median), peer/bare $(printf '%s\n' "${peer_ratios[@]}" | median)"
echo "median server CPU added per request: gate $(printf '%s\n' "${added[@]}" | median) µs, peer $(printf '%s\n' "${peer_added[@]}" | median) µs"
if [ "${sleeps[0]}" != "- - -" ]; then
    column() { printf '%s\n' "${sleeps[@]}" | awk -v k="$1" '{ print $k }' | median; }
    echo "median wrk sleeps per request: bare $(column 1), gated $(column 2), peer $(column 3)"
fi
if [ -n "$busy" ]; then
    echo "busy server ($busy_ns ns a request): median busy/bare $(printf '%s\n' "${busy_ratios[@]}" | median), CPU added beyond the $busy_ns ns $(printf '%s\n' "${busy_beyond[@]}" | median) µs a request, wrk slept $(printf '%s\n' "${busy_sleeps[@]}" | median) per request"
fi
