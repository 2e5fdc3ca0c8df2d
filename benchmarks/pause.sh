#!/usr/bin/env bash
# How long workflows pause while their shards move: the cluster layout of roles.sh (frontend,
# matching and worker processes, three history members on 127.0.0.1-3) under an open-loop
# load; the history member on 127.0.0.2 is stopped with SIGTERM (a planned leave; SIGNAL=KILL
# for kill -9) at LEAVE_AT and started again at REJOIN_AT. Prints the load generator's report: starts refused
# (`errors`), latency percentiles of the completed workflows, and the maximum.
#
# DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT runs it on a new PostgreSQL database instead
# of an SQLite file.
#
# Usage: benchmarks/pause.sh [RATE] [DURATION_S] [ROUNDS]   (defaults 40 30 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rate="${1:-40}"
duration="${2:-30}"
rounds="${3:-2}"
leave_at="${LEAVE_AT:-10}"
rejoin_at="${REJOIN_AT:-18}"
shards="${SHARDS:-12}"
signal="${SIGNAL:-TERM}"
. benchmarks/common.sh
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; [[ -n ${KEEP:-} ]] && echo "kept $work" || rm -rf "$work"' EXIT


echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $rate starts/s for ${duration}s, SIG$signal at ${leave_at}s, rejoin at ${rejoin_at}s, $shards shards"
port=28233
for round in $(seq 1 "$rounds"); do
    store=(--db-filename "$work/pause-$round.db")
    if [[ -n ${DATABASE_URL:-} ]]; then
        store=(--database-url "$DATABASE_URL/pause_${round}_$$")
    fi
    pids=()
    serve() {
        local ip=$1
        shift
        "$bin" server start-dev --ip "$ip" --port "$port" "${store[@]}" \
            --num-history-shards "$shards" --log-level "${LOG_LEVEL:-warn}" "$@" >>"$work/pause-$round.log" 2>&1 &
        pids+=($!)
    }
    serve 127.0.0.2 --services history
    leaver=${pids[-1]}
    serve 127.0.0.3 --services history
    for role in history matching worker frontend; do
        serve 127.0.0.1 --services "$role"
    done
    wait_serving "127.0.0.1:$port"
    wait_members_own_shards 3 "${store[@]}"
    "$loadtest" run --address "127.0.0.1:$port" --num-shards "$shards" --scenario one-activity \
        --rate "$rate" --duration "${duration}s" >"$work/report-$round" 2>"$work/progress-$round" &
    load=$!
    sleep "$leave_at"
    kill -"$signal" "$leaver"
    wait "$leaver" 2>/dev/null || true
    sleep $((rejoin_at - leave_at))
    serve 127.0.0.2 --services history
    wait "$load"
    echo "round $round:"
    grep -E '^(started|completed|errors|workflows_per_second|latency_ms\.(p50|p99|max)) ' \
        "$work/report-$round" | sed 's/^/  /'
    grep -ho 'shard [0-9]* is owned[^"]*' "$work/progress-$round" | sort | uniq -c | sed 's/^/  refused: /' || true
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    port=$((port + 1000))
done
