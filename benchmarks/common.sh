# Shared by the benchmark scripts (sourced): the binaries they run and how they wait for a
# deployment to serve.
bin=target/release/sundial
loadtest=target/release/sundial-loadtest

# Waits until the frontend at $1 answers health SERVING (20 s at most).
wait_serving() {
    local address=$1
    for _ in $(seq 1 200); do
        if .venv/bin/temporal operator cluster health --address "$address" 2>/dev/null \
            | grep -q SERVING; then
            return 0
        fi
        sleep 0.1
    done
    echo "$(basename "$0"): $address never served" >&2
    exit 1
}

# Waits (10 s at most) until each of $1 history members owns shards of the store the other
# arguments name (--db-filename F or --database-url URL).
wait_members_own_shards() {
    local count=$1
    shift
    for _ in $(seq 1 100); do
        [[ $("$bin" cluster members "$@" \
            | awk '$1 == "history" && $5 == "alive" && $NF > 0' | wc -l) == "$count" ]] && return 0
        sleep 0.1
    done
}
