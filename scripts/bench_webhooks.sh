#!/usr/bin/env bash
# Benchmarks outgoing webhooks on this machine, all on 127.0.0.1, in one run:
#   - baseline: `tidings subscriber import` of N confirmed subscribers into a fresh database with
#     no webhook endpoint;
#   - webhooks: the same import into a fresh database while the daemon runs, with an endpoint
#     subscribed to `subscriber.created` delivering to the Rust receiver of the tests
#     (examples/webhook_receiver.rs: keep-alive, a thread per connection, answers 204).
# Prints each import's time, their ratio (target: at most 1.5), and the events delivered per
# second from the first delivery to the last (target: at least 2,000/s).
# Usage: bash scripts/bench_webhooks.sh   (BENCHMARKS.md "Webhooks" explains)
# Knobs (environment): BENCH_SUBSCRIBERS (100000), BENCH_ROUNDS (2: baseline and webhooks
#   alternate), BENCH_CONCURRENCY (unset: webhook_endpoints.concurrency's default),
#   BENCH_BUILD (1: cargo build --release first; CARGO_TARGET_DIR is honoured),
#   BENCH_KEEP (1: keep the work folder), BENCH_PROFILE (release; debug for a quick check of
#   the script with BENCH_BUILD=0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_SUBSCRIBERS:-100000}
ROUNDS=${BENCH_ROUNDS:-2}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${BENCH_PROFILE:-release}
BIN=$TARGET/$PROFILE/tidings
RECEIVER=$TARGET/$PROFILE/examples/webhook_receiver

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    (cd "$ROOT" && cargo build --release --bin tidings --example webhook_receiver)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "work folder: $WORK"; fi
}
trap cleanup EXIT

{
    echo "email,status"
    seq 0 $((N - 1)) | awk '{ printf "reader%07d@example.com,confirmed\n", $1 }'
} > "$WORK/list.csv"

now() { date +%s.%N; }

# The environment of a tidings process on database $1 (a fresh folder).
env_for() {
    echo "TIDINGS_DATABASE_PATH=$1/tidings.db TIDINGS_SERVER_BIND=127.0.0.1:0 \
TIDINGS_CATALOG_LOAD_SAMPLE=false TIDINGS_FEEDS_MIRROR_DIR=$1/mirror \
TIDINGS_ADMIN_TOKEN=bench-token-0123456789abcdef TIDINGS_WEBHOOK_ENDPOINTS_ALLOW_PRIVATE=true \
TIDINGS_AUDIENCE_ENABLED=false ${BENCH_CONCURRENCY:+TIDINGS_WEBHOOK_ENDPOINTS_CONCURRENCY=$BENCH_CONCURRENCY}"
}

# Imports the list into database folder $1; prints the seconds it took.
import() {
    local start end
    start=$(now)
    env -i PATH="$PATH" $(env_for "$1") "$BIN" subscriber import "$WORK/list.csv" \
        > "$1/import.out" 2> "$1/import.err"
    end=$(now)
    echo "$end - $start" | bc -l
}

baseline() {
    local dir="$WORK/base$1"
    mkdir -p "$dir"
    import "$dir"
}

# Prints "import_seconds events_per_second".
webhooks() {
    local dir="$WORK/hooks$1"
    mkdir -p "$dir"
    "$RECEIVER" "$N" > "$dir/receiver.out" &
    local receiver=$!
    PIDS+=("$receiver")
    until [ -s "$dir/receiver.out" ]; do sleep 0.05; done
    local url
    url=$(head -1 "$dir/receiver.out")
    env -i PATH="$PATH" $(env_for "$dir") "$BIN" serve > "$dir/daemon.out" 2> "$dir/daemon.err" &
    local daemon=$!
    PIDS+=("$daemon")
    until grep -q "listening on" "$dir/daemon.out" 2>/dev/null; do sleep 0.05; done
    env -i PATH="$PATH" $(env_for "$dir") "$BIN" webhook-endpoint add "$url" \
        --event subscriber.created > /dev/null 2>&1
    local took
    took=$(import "$dir")
    wait "$receiver"
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    local rate
    rate=$(sed -n 's/.*: \([0-9]*\)\/s$/\1/p' "$dir/receiver.out")
    echo "$took $rate"
}

echo "webhooks benchmark: $N subscribers, $ROUNDS rounds ($(nproc) cores)"
for round in $(seq 1 "$ROUNDS"); do
    base=$(baseline "$round")
    read -r hooked rate < <(webhooks "$round")
    ratio=$(echo "$hooked / $base" | bc -l)
    printf "round %d: import %.2f s without an endpoint, %.2f s with one: %.2fx (target <= 1.5); delivered %d events/s (target >= 2000)\n" \
        "$round" "$base" "$hooked" "$ratio" "$rate"
done
