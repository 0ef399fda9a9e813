#!/usr/bin/env bash
# Where a server's time per request goes, bare, gated and peer side by
# side: each server (examples/loadtest, built with frame pointers into
# target/frame-pointers) is driven by wrk as examples/wrk/run.sh drives it,
# and sampled with `perf record` for 4 s in the middle of an 8 s run. Each
# run's samples are grouped by symbol into the rows below, each row's share
# multiplied by the run's CPU time per request (user + system, from
# /proc). The host's noise only ever adds time, so each server's three
# least disturbed runs (the lowest CPU time per request) are kept and
# averaged; each column then sums to the difference between those runs'
# CPU time and bare's. Needs wrk, taskset, perf (linux-perf) and python3,
# and a kernel that lets perf sample (perf_event_paranoid ≤ 1, or root).
#
#   bash examples/wrk/profile.sh [RUNS] [ROUTE]
#
# RUNS (default 8) of each server; ROUTE `track` (default: `POST
# /v1/track` with the keys) or `health` (the public `GET /health`).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-8}
route=${2:-track}
case "$route" in
    track | health) ;;
    *) echo "$0: ROUTE is track or health, not $route" >&2; exit 2 ;;
esac
source examples/wrk/lib.sh
need wrk taskset perf python3
dir=$(mktemp -d)
CARGO_TARGET_DIR=target/frame-pointers RUSTFLAGS="-C force-frame-pointers=yes" \
    cargo build --release --example loadtest
server=target/frame-pointers/release/examples/loadtest

taskset -c 0 "$server" --serve bare --addr 127.0.0.1:8090 > "$dir/bare.out" &
bare=$!
taskset -c 0 "$server" --serve gated --addr 127.0.0.1:8091 --keys-file "$dir/keys" > "$dir/gated.out" &
gated=$!
taskset -c 0 "$server" --serve peer --addr 127.0.0.1:8092 --keys-file "$dir/keys.peer" > "$dir/peer.out" &
peer=$!
trap 'kill $bare $gated $peer 2>/dev/null; rm -rf "$dir"' EXIT
for which in bare gated peer; do
    ready "$dir/$which.out"
done

# One profiled run of server $2 (pid) on port $1 with the keys of file $3,
# named $4: writes $dir/$4.cpu (µs of CPU per request) and $dir/$4.txt
# (percent and symbol, one a line).
profile() {
    local port=$1 pid=$2 keys=$3 name=$4 before after target
    if [ "$route" = health ]; then
        target=("http://127.0.0.1:$port/health")
    else
        target=(-s examples/wrk/rotate.lua "http://127.0.0.1:$port" -- "$keys")
    fi
    before=$(ticks "$pid")
    taskset -c 1 wrk -t1 -c32 -d8s "${target[@]}" > "$dir/$name.wrk" 2>&1 &
    local client=$!
    sleep 2
    perf record -e cpu-clock -F 999 -g -p "$pid" -o "$dir/$name.data" -- sleep 4 \
        > /dev/null 2>&1
    wait "$client"
    after=$(ticks "$pid")
    awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
        / requests in / { print (after - before) / hz * 1e6 / $1 }' "$dir/$name.wrk" > "$dir/$name.cpu"
    perf report -i "$dir/$name.data" --no-children --sort sym --stdio -g none 2> /dev/null |
        awk '/^ *[0-9.]+%/ { pct = $1; sub("%", "", pct); $1 = ""; print pct "\t" substr($0, 2) }' \
            > "$dir/$name.txt"
}

for run in $(seq "$runs"); do
    profile 8090 "$bare" "$dir/keys" "bare.$run"
    profile 8091 "$gated" "$dir/keys" "gated.$run"
    profile 8092 "$peer" "$dir/keys.peer" "peer.$run"
    echo "run $run: CPU µs a request: bare $(cat "$dir/bare.$run.cpu"), gated $(cat "$dir/gated.$run.cpu"), peer $(cat "$dir/peer.$run.cpu")"
done

python3 - "$dir" "$runs" "$route" <<'EOF'
import re, sys
folder, runs, route = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Rows, first match wins (the symbol as perf names it; `[k]` is the kernel).
ROWS = [
    ("key check: credential, verified-key cache, record",
     r"tollgate::key::|siphasher|tollgate::context::(record|digest|principal)"),
    ("rate limit: decision, header values",
     r"tollgate::rate_limit::|tollgate::context::(gcra|meter|window|quota|credits)|tollgate::render::number"),
    ("route match, origin, scope, body cap",
     r"tollgate::context::(routes|route|path|per_route|client_ip|origin)|matchit::|tollgate::(origin|scope|body_limit|route)::"),
    ("the check pipeline: service, future, response headers, error echo",
     r"tollgate::"),
    ("tower_governor and tower-http's validation, SHA-256",
     r"governor|tower_http::validate_request|sha2::|sha256|dashmap|loadtest::peer"),
    ("writing and reading headers (`http`'s `HeaderMap`)", r"http::header::"),
    ("allocator",
     r"\] (malloc|free|cfree|realloc|calloc|_int_\w+|__libc_\w*(alloc|free)\w*|tcache\w*|unlink_chunk\w*|malloc_consolidate|__rust_(alloc|dealloc|realloc|alloc_zeroed))\b|arena"),
    ("`memmove` / `memcpy` / `memcmp`", r"__mem(move|cpy|cmp|set)|\] mem(move|cpy|cmp|set)\b"),
    ("kernel: TCP, syscalls, waking the client", r"^\[k\]"),
    ("hyper, tokio, the demo app, the rest in user space", r""),
]
def load(name):
    cpu = float(open(f"{folder}/{name}.cpu").read())
    rows = [0.0] * len(ROWS)
    for line in open(f"{folder}/{name}.txt"):
        pct, symbol = line.rstrip("\n").split("\t", 1)
        for index, (_, pattern) in enumerate(ROWS):
            if re.search(pattern, symbol):
                rows[index] += float(pct)
                break
    total = sum(rows) or 1.0
    return cpu, [share / total * cpu * 1000 for share in rows]
kept = {}
for server in ("bare", "gated", "peer"):
    loaded = sorted((load(f"{server}.{run}") for run in range(1, runs + 1)), key=lambda r: r[0])[:3]
    cpus = [cpu for cpu, _ in loaded]
    rows = [sum(r[i] for _, r in loaded) / len(loaded) for i in range(len(ROWS))]
    kept[server] = (cpus, rows)
    print(f"{server}: kept runs {', '.join(f'{c:.2f}' for c in cpus)} µs a request")
print(f"\nroute: {route}\n")
print("| where | bare, ns per request | gated, added | peer, added |")
print("|---|---|---|---|")
bare, gated, peer = (kept[s][1] for s in ("bare", "gated", "peer"))
def ns(value, sign=""):
    return f"{value:{sign},.0f}".replace(",", " ")
for index, (label, _) in enumerate(ROWS):
    print(f"| {label} | {ns(bare[index])} | {ns(gated[index] - bare[index], '+')} | {ns(peer[index] - bare[index], '+')} |")
print(f"| **total** | **{ns(sum(bare))}** | **{ns(sum(gated) - sum(bare), '+')}** | **{ns(sum(peer) - sum(bare), '+')}** |")
EOF
