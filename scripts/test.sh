#!/usr/bin/env bash
# Run every test: Rust formatting, lints and tests, then the Python SDK / CLI / differential
# suite against a debug build of sundial.
#
# Usage: scripts/test.sh [--python-only] [-- PYTEST_ARGS...]
#   --python-only   skip the cargo phases (the sundial binary must already exist, unless
#                   SUNDIAL_TARGET=reference)
# Environment:
#   SUNDIAL_TARGET=sundial|reference   server under test for the Python suite (default sundial)
#   SUNDIAL_BIN                        sundial binary (default target/debug/sundial)
#   SUNDIAL_TEST_LOG_DIR               server logs/db files (default target/sdk-test-logs)
#   SUNDIAL_STORE=sqlite|postgres|mariadb  what Sundial persists to in the Python suite (default
#                                      sqlite, then postgres, then mariadb's workflow tests)
#   SUNDIAL_DEPLOYMENT=single|roles|cluster  one process per server (default), one per role, or
#                                      one per role with three history members; after the
#                                      default runs, some tests run on the other two too
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python_only=0
pytest_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python-only) python_only=1; shift ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

phase() { printf '\n==== %s ====\n' "$*"; }

if [[ $python_only -eq 0 ]]; then
    phase "cargo fmt --check"
    cargo fmt --all -- --check

    phase "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings

    phase "cargo test"
    cargo test --workspace

    phase "cargo build --bin sundial"
    cargo build --bin sundial
fi

phase "python venv"
scripts/python-env.sh

export SUNDIAL_BIN="${SUNDIAL_BIN:-target/debug/sundial}"
export SUNDIAL_TARGET="${SUNDIAL_TARGET:-sundial}"
export SUNDIAL_TEST_LOG_DIR="${SUNDIAL_TEST_LOG_DIR:-target/sdk-test-logs}"
rm -rf "$SUNDIAL_TEST_LOG_DIR"
mkdir -p "$SUNDIAL_TEST_LOG_DIR"

phase "python SDK/CLI suite (target: $SUNDIAL_TARGET, logs: $SUNDIAL_TEST_LOG_DIR)"
.venv/bin/python -m pytest tests/sdk/python -v --durations=10 ${pytest_args[@]+"${pytest_args[@]}"}

# The same suite with Sundial on PostgreSQL, and its SDK workflow tests on MariaDB (each on a
# private server that sundial-testdb starts), unless only some tests were asked for.
if [[ $SUNDIAL_TARGET == sundial && ${#pytest_args[@]} -eq 0 && ${SUNDIAL_STORE:-sqlite} == sqlite ]]; then
    cargo build -p sundial-testdb
    phase "python SDK/CLI suite on PostgreSQL"
    SUNDIAL_STORE=postgres .venv/bin/python -m pytest tests/sdk/python -q --durations=5
    phase "python SDK workflow tests on MariaDB"
    SUNDIAL_STORE=mariadb .venv/bin/python -m pytest tests/sdk/python/test_workflows.py \
        tests/sdk/python/test_durability.py -q --durations=5
    # Each server as four processes, one per role (the whole suite so: scripts/roles.sh).
    phase "python SDK workflow and query tests on four processes (SQLite)"
    SUNDIAL_DEPLOYMENT=roles .venv/bin/python -m pytest tests/sdk/python/test_workflows.py \
        tests/sdk/python/test_queries.py -q --durations=5
    phase "python SDK workflow and durability tests on four processes (PostgreSQL)"
    SUNDIAL_DEPLOYMENT=roles SUNDIAL_STORE=postgres .venv/bin/python -m pytest \
        tests/sdk/python/test_workflows.py tests/sdk/python/test_durability.py -q --durations=5
    phase "python SDK workflow tests on three history members (PostgreSQL)"
    SUNDIAL_DEPLOYMENT=cluster SUNDIAL_STORE=postgres .venv/bin/python -m pytest \
        tests/sdk/python/test_workflows.py -q --durations=5
fi
