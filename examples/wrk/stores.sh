#!/usr/bin/env bash
# The demo gateway's throughput with each rate store, on loopback: in
# memory, Redis (one node, exact), Redis in approximate mode, and a
# three-master Redis Cluster. The gateway is pinned to core 0; wrk and the
# redis-servers share core 1 (in production Redis runs elsewhere). Every
# request is `POST /v1/track` with the demo's server key, on a quota high
# enough that all are admitted: the figures are the cost of a decision,
# not of refusals. Prints each round's requests/s and the medians.
# Needs wrk, redis-server and redis-cli (apt-get install wrk redis-server).
#
#   bash examples/wrk/stores.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/wrk/lib.sh
rounds=${1:-3}
seconds=${2:-5}
connections=${3:-32}
dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for port in 16400 17400 17401 17402; do
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
cargo build --release --features redis --example gateway

redis() {
    taskset -c 1 redis-server --port "$1" --save '' --appendonly no --dir "$dir" \
        --daemonize yes --logfile "$dir/redis-$1.log" "${@:2}"
    until redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.1; done
}
redis 16400
for port in 17400 17401 17402; do
    redis "$port" --cluster-enabled yes --cluster-config-file "nodes-$port.conf"
done
redis-cli --cluster create 127.0.0.1:17400 127.0.0.1:17401 127.0.0.1:17402 \
    --cluster-replicas 0 --cluster-yes >/dev/null
until redis-cli -p 17400 cluster info | grep -q 'cluster_state:ok'; do sleep 0.2; done

# The demo's config with a quota nobody reaches on the route driven, and
# the store of each run.
sed 's/quotas = \[{ rate = 50, per = "second", burst = 200 }\]/quotas = [{ rate = 100000000, per = "second", burst = 100000000 }]/' \
    examples/gateway.toml > "$dir/memory.toml"
grep -q 'rate = 100000000' "$dir/memory.toml"
printf '\n[redis]\nurl = "redis://127.0.0.1:16400"\n' | cat "$dir/memory.toml" - > "$dir/redis.toml"
printf '\n[redis]\nurl = "redis://127.0.0.1:16400"\nmode = "approximate"\n' |
    cat "$dir/memory.toml" - > "$dir/approximate.toml"
printf '\n[redis]\ncluster = ["redis://127.0.0.1:17400", "redis://127.0.0.1:17401", "redis://127.0.0.1:17402"]\n' |
    cat "$dir/memory.toml" - > "$dir/cluster.toml"
grep -o 'sk_test_[A-Za-z0-9]*' examples/gateway.toml | sed -n 1p > "$dir/keys"

stores=(memory redis approximate cluster)
port=8090
declare -A ports
for store in "${stores[@]}"; do
    ports[$store]=$port
    taskset -c 0 target/release/examples/gateway --config "$dir/$store.toml" \
        --addr "127.0.0.1:$port" > "$dir/$store.out" 2>&1 &
    pids+=($!)
    until grep -q 'demo gateway on' "$dir/$store.out" 2>/dev/null; do sleep 0.2; done
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/track" \
        -H "Authorization: Bearer $(cat "$dir/keys")" -d '{}')
    [ "$status" = 202 ] || { echo "$store: POST /v1/track answered $status"; exit 1; }
    port=$((port + 1))
done

declare -A results
for round in $(seq "$rounds"); do
    line="round $round:"
    for store in "${stores[@]}"; do
        out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s examples/wrk/rotate.lua \
            "http://127.0.0.1:${ports[$store]}" -- "$dir/keys")
        if grep -q 'Non-2xx' <<< "$out"; then
            echo "$store: some requests were refused:"; echo "$out"; exit 1
        fi
        rate=$(awk '/^Requests\/sec/ { print $2 }' <<< "$out")
        results[$store]+="$rate "
        line+=" $store $rate"
    done
    echo "$line req/s"
done
memory=$(printf '%s\n' ${results[memory]} | median %.0f)
for store in "${stores[@]}"; do
    m=$(printf '%s\n' ${results[$store]} | median %.0f)
    echo "median $store: $m req/s ($(awk -v m="$m" -v b="$memory" 'BEGIN { printf "%.2f", m / b }') of memory)"
done
