#!/usr/bin/env bash
# Longer fault schedules than CI runs: the fault tier (tests/tests/faults.rs) with more
# workflows, several seeds and fault rates. Every acknowledged workflow must complete exactly
# once with a valid history under each schedule. CI runs the default schedule (200 workflows,
# 5%, one seed) as part of `cargo test`. Then database restarts under load, SEEDS rounds, and
# the history-member schedule (zombie, kill -9, gossip partition, rolling restart) with SEEDS seeds.
#
# Usage: scripts/faults.sh [SEEDS] [WORKFLOWS] [RATES]
#   SEEDS      how many seeds per rate (default 5)
#   WORKFLOWS  workflows per schedule (default 1000)
#   RATES      space-separated fault rates (default "0.02 0.05 0.1")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seeds="${1:-5}"
workflows="${2:-1000}"
rates="${3:-0.02 0.05 0.1}"

cargo test -p sundial-tests --test faults --no-run
for rate in $rates; do
    for seed in $(seq 1 "$seeds"); do
        echo "==== rate $rate, seed $seed, $workflows workflows ===="
        SUNDIAL_FAULT_RATE="$rate" SUNDIAL_FAULT_SEED="$seed" SUNDIAL_FAULT_WORKFLOWS="$workflows" \
            cargo test -p sundial-tests --test faults five_percent -- --nocapture
    done
done
# PostgreSQL and MariaDB restarted under load, several rounds (CI runs one).
for round in $(seq 1 "$seeds"); do
    echo "==== database restarts under load, round $round ===="
    cargo test -p sundial-tests --test main database_restarts -- --nocapture
done
echo "faults.sh: every schedule passed"
# Three history members through a zombie, a kill -9, a gossip partition and a rolling restart, each seed picking
# the victims (CI runs seed 2024 with 200 workflows).
for seed in $(seq 1 "$seeds"); do
    echo "==== history member faults, seed $seed, $workflows workflows ===="
    SUNDIAL_FAULT_SEED="$seed" SUNDIAL_FAULT_WORKFLOWS="$workflows" \
        cargo test -p sundial-tests --test faults history_member -- --nocapture
done
