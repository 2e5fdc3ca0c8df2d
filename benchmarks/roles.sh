#!/usr/bin/env bash
# One process against four (one per role) on the same machine, same store kind, same load:
# `sundial-loadtest run` against each, alternating, and the CPU the server processes spent per
# completed workflow (all four for the split deployment), read from /proc before and after.
# LAYOUTS="single roles cluster" adds a cluster: the four roles with three history members
# (127.0.0.1, 127.0.0.2 and 127.0.0.3) sharing the shards.
#
# DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT (no database) runs every layout on a new
# PostgreSQL (or mysql://) database of that server instead of an SQLite file.
#
# Usage: benchmarks/roles.sh [WORKFLOWS] [CONCURRENCY] [ROUNDS]   (defaults 5000 100 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

workflows="${1:-5000}"
concurrency="${2:-100}"
rounds="${3:-2}"
# The same shard count for every layout (enough for each of three history members to own some).
shards="${SHARDS:-12}"
. benchmarks/common.sh
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

# CPU seconds (user + system) of the given processes.
cpu() {
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total $(getconf CLK_TCK)" | awk '{printf "%.2f", $1 / $2}'
}


run_one() {
    local layout=$1 round=$2 port=$3
    local store=(--db-filename "$work/$layout-$round.db")
    if [[ -n ${DATABASE_URL:-} ]]; then
        store=(--database-url "$DATABASE_URL/bench_${layout}_${round}_$$")
    fi
    pids=()
    # One process, or one per role (with two more history members for the cluster), each
    # started as: serve IP ROLES.
    serve() {
        local ip=$1
        shift
        "$bin" server start-dev --ip "$ip" --port "$port" "${store[@]}" \
            --num-history-shards "$shards" --log-level warn "$@" >>"$work/$layout-$round.log" 2>&1 &
        pids+=($!)
    }
    if [[ $layout == single ]]; then
        serve 127.0.0.1
    else
        if [[ $layout == cluster ]]; then
            serve 127.0.0.2 --services history
            serve 127.0.0.3 --services history
        fi
        for role in history matching worker frontend; do
            serve 127.0.0.1 --services "$role"
        done
    fi
    wait_serving "127.0.0.1:$port"
    if [[ $layout == cluster ]]; then
        # Every member owns its shards (the first one up took them all), then serves.
        wait_members_own_shards 3 "${store[@]}"
        wait_serving "127.0.0.1:$port"
    fi
    local before
    before=$(cpu "${pids[@]}")
    local report
    report=$("$loadtest" run --address "127.0.0.1:$port" --scenario one-activity \
        --concurrency "$concurrency" --workflows "$workflows")
    local after
    after=$(cpu "${pids[@]}")
    local wfs completed
    wfs=$(awk '$1 == "workflows_per_second" {print $2}' <<<"$report")
    completed=$(awk '$1 == "completed" {print $2}' <<<"$report")
    echo "$layout round $round: $wfs wf/s, $completed completed, server CPU $(echo "$before $after $completed" \
        | awk '{printf "%.2f", ($2 - $1) * 1000 / $3}') ms/wf, p50 $(awk '$1 == "latency_ms.p50" {print $2}' <<<"$report") ms"
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
}

kind="SQLite file"
[[ -n ${DATABASE_URL:-} ]] && kind="${DATABASE_URL%%://*} database"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $workflows workflows, concurrency $concurrency, $shards shards, $kind"
port=27233
for round in $(seq 1 "$rounds"); do
    for layout in ${LAYOUTS:-single roles}; do
        run_one "$layout" "$round" "$port"
        port=$((port + 100))
    done
done
