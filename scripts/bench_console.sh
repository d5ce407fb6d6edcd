#!/usr/bin/env bash
# Measures the admin's console at the HTTP answer (issue 25, "done means" 3), on a list the size of
# a large publisher's: 1,000,000 subscribers and a ledger of 20 runs over 100,000 of them
# (scripts/seed_console.py). Per engine: starts `tidings serve` on the seeded database, logs in as
# an owner, then for each URL a warm-up and N sequential requests on one keep-alive connection
# (scripts/bench_console.py); prints p50/p95 per URL with PASS/FAIL against its target:
#   subscriber search (q=gmail, q=@example.org, q=ann, a rare name, q=gmail&status=bounced, q=gmail&tag=rust):
#     p50 <= 50 ms, p95 <= 150 ms;  the dashboard /admin: p50 <= 100 ms;
#   one subscriber's page (one with deliveries and an event): p50 <= 50 ms.
# Usage: bash scripts/bench_console.sh [sqlite|postgres|both]   (default both; exit 1 on a FAIL)
# The seeded SQLite database is kept in BENCH_CACHE (/tmp/tidings-bench-console), named after the
# seed parameters, and its PostgreSQL copy (made with `tidings migrate --to`, then ANALYZE) is kept
# as the database bench_console_<parameters> on the server; later runs reuse both.
# Knobs (environment): BENCH_SUBSCRIBERS (1000000), BENCH_RUNS (20), BENCH_DELIVERIES (100000),
#   BENCH_SEED (25), BENCH_REQUESTS (50 per URL), BENCH_WARMUP (5 per URL), BENCH_REPEAT (1: daemon
#   starts per engine; the summary gives medians), BENCH_BUILD (1: cargo build --release first;
#   CARGO_TARGET_DIR is honoured), BENCH_BIN (a tidings binary to use instead; no build), BENCH_CACHE, BENCH_PG_URL (a server URL whose user may create
#   databases; default the local test server), BENCH_RESULTS (file to copy the JSON lines to).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-both}
case "$MODE" in sqlite | postgres | both) ;; *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;; esac
SUBS=${BENCH_SUBSCRIBERS:-1000000}
RUNS=${BENCH_RUNS:-20}
DELIVERIES=${BENCH_DELIVERIES:-100000}
SEED=${BENCH_SEED:-25}
REQUESTS=${BENCH_REQUESTS:-50}
WARMUP=${BENCH_WARMUP:-5}
REPEAT=${BENCH_REPEAT:-1}
CACHE=${BENCH_CACHE:-/tmp/tidings-bench-console}
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:55432/postgres?sslmode=verify-full&sslrootcert=/tmp/mypg/ca.crt}
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tidings}
PY="python3 $ROOT/scripts/bench_console.py"
export BENCH_USER=bench
export BENCH_PASSWORD="bench console password, not a secret"

log() { printf '[bench-console %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

if [ "${BENCH_BUILD:-1}" = 1 ] && [ -z "${BENCH_BIN:-}" ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || die "no $BIN (run cargo build --release)"

# the seeder's own version too: a changed seed_console.py seeds afresh
KEY="s${SUBS}-r${RUNS}-d${DELIVERIES}-x${SEED}-$(sha1sum "$ROOT/scripts/seed_console.py" | cut -c1-8)"
mkdir -p "$CACHE"
DB="$CACHE/console-$KEY.db"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench-console.XXXXXX")
RESULTS="$WORK/results.jsonl"
# A private copy: a release target shared with other builds may be rebuilt from another branch
# while this runs.
cp "$BIN" "$WORK/tidings"
BIN="$WORK/tidings"
cd "$WORK"   # no ./tidings.toml is picked up: everything comes from TIDINGS_* variables
DAEMON=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$DAEMON" ]; then
        kill -TERM "$DAEMON" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON" 2>/dev/null || true
    fi
    [ -n "${BENCH_RESULTS:-}" ] && [ -f "$RESULTS" ] && cp "$RESULTS" "$BENCH_RESULTS"
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export TIDINGS_CATALOG_LOAD_SAMPLE=false
export RUST_LOG=${RUST_LOG:-warn}

# ---------------------------------------------------------------- seed (cached)
if [ ! -f "$DB.done" ]; then
    rm -f "$DB" "$DB-wal" "$DB-shm"
    log "seeding $DB ($SUBS subscribers, $RUNS runs of $DELIVERIES deliveries, seed $SEED)"
    python3 "$ROOT/scripts/seed_console.py" "$DB" --subscribers "$SUBS" --runs "$RUNS" \
        --deliveries "$DELIVERIES" --seed "$SEED" --tidings "$BIN" >&2
    touch "$DB.done"
else
    log "reusing $DB"
fi
EMAIL=$($PY pick "$DB")
log "subscriber page: $EMAIL"

pg_url() { python3 -c "import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path='/'+sys.argv[2])))" "$PG_URL" "$1"; }
PG_DB="bench_console_$(echo "$KEY" | tr -c 'a-z0-9\n' _)"
pg_copy() {
    local exists
    exists=$(psql "$PG_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")
    if [ "$exists" = 1 ]; then log "reusing PostgreSQL database $PG_DB"; return; fi
    log "copying into PostgreSQL database $PG_DB (tidings migrate --to; several minutes)"
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS ${PG_DB}_tmp" -c "CREATE DATABASE ${PG_DB}_tmp"
    TIDINGS_DATABASE_PATH="$DB" "$BIN" migrate --to "$(pg_url "${PG_DB}_tmp")" >&2
    psql "$(pg_url "${PG_DB}_tmp")" -qc "ANALYZE"
    psql "$PG_URL" -qc "ALTER DATABASE ${PG_DB}_tmp RENAME TO $PG_DB"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run ENGINE VAR=VALUE: one daemon start, one measurement
run() {
    local engine=$1 dbenv=$2 port
    env "$dbenv" "$BIN" admin list 2>/dev/null | grep -qw "$BENCH_USER" ||
        echo "$BENCH_PASSWORD" | env "$dbenv" "$BIN" admin add "$BENCH_USER" --role owner >/dev/null
    port=$(free_port)
    env "$dbenv" TIDINGS_SERVER_BIND="127.0.0.1:$port" "$BIN" serve >"$WORK/serve.log" 2>&1 &
    DAEMON=$!
    for _ in $(seq 3000); do
        grep -q "listening on" "$WORK/serve.log" && break
        kill -0 "$DAEMON" 2>/dev/null || die "tidings serve stopped: $(tail -5 "$WORK/serve.log")"
        sleep 0.1
    done
    grep -q "listening on" "$WORK/serve.log" || die "tidings serve did not listen within 300 s"
    log "$engine: daemon on 127.0.0.1:$port; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    $PY measure "http://127.0.0.1:$port" "$EMAIL" --n "$REQUESTS" --warmup "$WARMUP" \
        --engine "$engine" --results "$RESULTS" || true
    kill -TERM "$DAEMON"
    wait "$DAEMON" 2>/dev/null || true
    DAEMON=
}

if [ "$MODE" != postgres ]; then
    for i in $(seq "$REPEAT"); do run sqlite "TIDINGS_DATABASE_PATH=$DB"; done
fi
if [ "$MODE" != sqlite ]; then
    pg_copy
    for i in $(seq "$REPEAT"); do run postgres "TIDINGS_DATABASE_URL=$(pg_url "$PG_DB")"; done
fi
log "summary ($SUBS subscribers, $REQUESTS requests per URL after $WARMUP, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
$PY summary "$RESULTS"
