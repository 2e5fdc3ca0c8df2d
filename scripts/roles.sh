#!/usr/bin/env bash
# The whole Python SDK/CLI suite against four-process deployments (one process per role:
# `start-dev --services frontend|history|matching|worker` on one store), on SQLite and on
# PostgreSQL. Longer than CI runs (four debug processes per server): CI runs the roles tests
# (test_roles.py) in the main suite and the workflow and query tests on four processes.
#
# Usage: scripts/roles.sh [PYTEST_ARGS...]
#   SUNDIAL_DEPLOYMENT=cluster runs it with three history members instead of one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --bin sundial -p sundial-testdb
scripts/python-env.sh
export SUNDIAL_BIN="${SUNDIAL_BIN:-target/debug/sundial}"
export SUNDIAL_DEPLOYMENT="${SUNDIAL_DEPLOYMENT:-roles}"
export SUNDIAL_TEST_LOG_DIR="${SUNDIAL_TEST_LOG_DIR:-target/sdk-roles-logs}"
rm -rf "$SUNDIAL_TEST_LOG_DIR"
mkdir -p "$SUNDIAL_TEST_LOG_DIR"
for store in sqlite postgres; do
    printf '\n==== python SDK/CLI suite on four processes, %s ====\n' "$store"
    SUNDIAL_STORE=$store .venv/bin/python -m pytest tests/sdk/python -q --durations=5 "$@"
done
