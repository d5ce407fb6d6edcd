#!/usr/bin/env bash
# Benchmarks sending digests on this machine, all on 127.0.0.1, in one run of about 6-15 minutes:
#   1. baseline: postfix's smtp-source (20 KB messages, 8 sessions, connections kept open with -d)
#      into smtp-sink, repeated between the tidings runs; and `openssl speed rsa2048` sign/s;
#   2. tidings: 100,000 confirmed subscribers (a realistic mix of tags, cadences, time zones)
#      imported with `tidings subscriber import`, 8 recent articles (a ~20 KB digest), then
#      `tidings digest run --now` into the same smtp-sink three times on fresh copies of the same
#      database: without DKIM, with Ed25519 DKIM, with RSA-2048 DKIM; messages/s, peak RSS, CPU%;
#      planning time (`digest run --now --dry-run` on the same database);
#   3. planning at scale: the same database grown to 1,000,000 confirmed subscribers (inserted with
#      Python's sqlite3), `digest run --now --dry-run`.
# Usage: bash scripts/bench_digest.sh   (as root, or with sudo for apt-get; summary table at the end;
#   BENCHMARKS.md "Digests" explains)
# Knobs (environment): BENCH_SUBSCRIBERS (100000), BENCH_BIG (1000000; 0 skips step 3),
#   BENCH_MESSAGES (20000 per smtp-source run), BENCH_SEND_LIMIT (150: seconds a send run may take;
#   it is then stopped with SIGINT, which tidings handles, and the rate is what it sent so far),
#   BENCH_PLAN_LIMIT (120 s per dry run), BENCH_CONCURRENCY (unset: tidings' default digest.concurrency, 48), BENCH_VARIANTS ("none ed25519 rsa"; also "verp": no DKIM, mail.return_path set),
#   BENCH_BUILD (1: cargo build --release first; CARGO_TARGET_DIR is honoured), BENCH_PERF (1: a
#   10 s `perf record` of each send run, top symbols in the work folder), BENCH_KEEP (1: keep the
#   work folder), BENCH_SUMMARY (file to copy the summary table to), BENCH_RESULTS (same for JSON),
#   BENCH_PG_URL (a PostgreSQL URL whose user may create databases: the runs then use PostgreSQL,
#   each on a copy made with CREATE DATABASE … TEMPLATE; the variant "2nodes" runs two
#   `digest run` processes at once on one database, as two nodes; the 1,000,000 step is skipped),
#   BENCH_PG_TLS (with BENCH_PG_URL: the variant "tls" is "none" with tidings' database URL's query
#   replaced by it, e.g. "sslmode=verify-full&sslrootcert=/path/ca.crt", against the plain
#   BENCH_PG_URL (sslmode=disable) of "none" in the same run),
#   BENCH_BASE_BIN (another build of tidings, say the commit before a change: the variant "base"
#   runs it, no DKIM, on a database it made itself from the same input, so that an A/B such as
#   BENCH_VARIANTS="base none base none" is measured in one run; the summary gives medians).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUBSCRIBERS=${BENCH_SUBSCRIBERS:-100000}
BIG=${BENCH_BIG:-1000000}
MESSAGES=${BENCH_MESSAGES:-20000}
SEND_LIMIT=${BENCH_SEND_LIMIT:-150}
PLAN_LIMIT=${BENCH_PLAN_LIMIT:-120}
CONCURRENCY=${BENCH_CONCURRENCY:-}
VARIANTS=${BENCH_VARIANTS:-none ed25519 rsa}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tidings
PY="python3 $ROOT/scripts/bench_digest.py"

log() { printf '[bench-digest %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now_ns() { date +%s%N; }
secs() { python3 -c "print(round(($2 - $1) / 1e9, 3))"; }   # secs START_NS END_NS

# ---------------------------------------------------------------- 0. tools and build
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
find_tool() { command -v "$1" 2>/dev/null || for d in /usr/sbin /usr/lib/postfix/sbin; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done; }
missing=()
[ -n "$(find_tool smtp-sink)" ] && [ -n "$(find_tool smtp-source)" ] || missing+=(postfix)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (postfix without a mail system: only smtp-sink/smtp-source are used)"
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi
SINK=$(find_tool smtp-sink); SOURCE=$(find_tool smtp-source)
[ -n "$SINK" ] && [ -n "$SOURCE" ] || die "smtp-sink/smtp-source not found after installing postfix"
if [ "${BENCH_BUILD:-1}" = 1 ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || die "no $BIN (run cargo build --release)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench-digest.XXXXXX")
chmod 755 "$WORK"
cd "$WORK"   # so no ./tidings.toml is picked up: everything comes from TIDINGS_* variables
SINK_PID=
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}" $SINK_PID; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}" $SINK_PID; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SINK_USER=(); [ "$(id -u)" -eq 0 ] && SINK_USER=(-u nobody)
# -c: running counters (sess=, quit=, mesg=) on stdout; 1000: listen backlog. It discards messages.
"$SINK" "${SINK_USER[@]}" -c "127.0.0.1:$PORT" 1000 >sink.out 2>sink.err &
SINK_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SINK_PID" 2>/dev/null || die "smtp-sink did not start: $(cat sink.err)"
    sleep 0.1
done
sink_count() { $PY sinkcount sink.out; }
log "smtp-sink on 127.0.0.1:$PORT (pid $SINK_PID); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

export TIDINGS_CATALOG_LOAD_SAMPLE=false
export TIDINGS_MAIL_TRANSPORT="smtp://127.0.0.1:$PORT"
export TIDINGS_MAIL_TLS=none
export TIDINGS_MAIL_FROM="Bench <bench@example.com>"
[ -n "$CONCURRENCY" ] && export TIDINGS_DIGEST_CONCURRENCY=$CONCURRENCY
export TIDINGS_MAIL_TEMPLATES_DIR="$ROOT/email_templates"
export TIDINGS_SITE_BASE_URL="https://blog.example/"
export RUST_LOG=warn
PG_URL=${BENCH_PG_URL:-}
[ -n "$PG_URL" ] && BIG=0
# The database NAME: a file in the work folder, or on PostgreSQL a database of that name.
pg_url() { python3 -c "import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path='/'+sys.argv[2])))" "$PG_URL" "$1"; }
db_env() {
    if [ -n "$PG_URL" ]; then echo "TIDINGS_DATABASE_URL=$(pg_url "$(basename "$1" .db | tr -c 'a-z0-9_\n' _)")"
    else echo "TIDINGS_DATABASE_PATH=$1"; fi
}
# copy_db FROM TO (paths; on PostgreSQL the names they stand for)
copy_db() {
    if [ -n "$PG_URL" ]; then
        local from to; from=$(basename "$1" .db | tr -c 'a-z0-9_\n' _); to=$(basename "$2" .db | tr -c 'a-z0-9_\n' _)
        psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $to" -c "CREATE DATABASE $to TEMPLATE $from" >/dev/null
    else cp "$1" "$2"; fi
}
drop_db() {
    if [ -n "$PG_URL" ]; then psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $(basename "$1" .db | tr -c 'a-z0-9_\n' _)" >/dev/null
    else rm -f "$1"*; fi
}
if [ -n "$PG_URL" ]; then
    for name in base base0 run_none run_verp run_2nodes run_base run_tls plan keys; do psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $name" >/dev/null; done
    psql -q "$PG_URL" -c "CREATE DATABASE base" -c "CREATE DATABASE base0" -c "CREATE DATABASE keys" >/dev/null
fi
tidings() { env "$(db_env "$DB")" "$BIN" "$@"; }
BASE_BIN=${BENCH_BASE_BIN:-}
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || die "BENCH_BASE_BIN=$BASE_BIN is not an executable"
[[ " $VARIANTS " != *" base "* ]] || [ -n "$BASE_BIN" ] || die "the variant base needs BENCH_BASE_BIN"
checkpoint() { [ -n "$PG_URL" ] || python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()" "$1"; }

RESULTS=results.json
echo '{"variants": {}, "runs": {}, "baselines": []}' >"$RESULTS"
# put KEY JSON-VALUE: results[KEY] = value (KEY may be a.b for one level of nesting)
put() { python3 - "$RESULTS" "$1" "$2" <<'EOF'
import json, sys
path, key, value = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
r = json.load(open(path))
if "." in key:
    a, b = key.split(".", 1)
    r.setdefault(a, {})[b] = value
else:
    r[key] = value
json.dump(r, open(path, "w"), indent=1)
EOF
}
# add KEY JSON-VALUE: appends value to the list results[runs][KEY] (every run of a variant)
add() { python3 - "$RESULTS" "$1" "$2" <<'EOF'
import json, sys
path, key, value = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
r = json.load(open(path))
r.setdefault("runs", {}).setdefault(key, []).append(value)
json.dump(r, open(path, "w"), indent=1)
EOF
}
# time_field FILE LABEL: a value from /usr/bin/time -v output
time_field() { sed -n "s/^\s*$2: //p" "$1" | head -1; }

# ---------------------------------------------------------------- 1. references
BASELINES=()
baseline() {
    local before after t0 t1 s rate
    before=$(sink_count)
    t0=$(now_ns)
    timeout 300 "$SOURCE" -d -s 8 -l 20480 -m "$MESSAGES" "127.0.0.1:$PORT" >/dev/null \
        || die "smtp-source failed"
    t1=$(now_ns)
    sleep 0.2
    after=$(sink_count)
    s=$(secs "$t0" "$t1")
    rate=$(python3 -c "print(round($MESSAGES / $s, 1))")
    [ $((after - before)) -eq "$MESSAGES" ] || log "warning: smtp-sink counted $((after - before)) of $MESSAGES"
    BASELINES+=("$rate")
    log "baseline: smtp-source $MESSAGES x 20 KB in $s s = $rate msg/s"
}

log "openssl speed -seconds 3 rsa2048"
openssl speed -seconds 3 rsa2048 >openssl.txt 2>/dev/null || die "openssl speed failed"
RSA_SIGN=$(awk '/^rsa 2048 bits/ {print $6; exit}' openssl.txt)
[ -n "$RSA_SIGN" ] || die "cannot read sign/s from openssl speed: $(tail -3 openssl.txt)"
put openssl_rsa_sign "$RSA_SIGN"
log "openssl rsa2048: $RSA_SIGN sign/s"
baseline

# ---------------------------------------------------------------- 2. the 100k database
$PY articles old.json new.json
$PY subscribers subscribers.csv "$SUBSCRIBERS"
DB=$WORK/base.db
log "base.db: the tag-carrying old article, then $SUBSCRIBERS subscribers (subscriber import), then 8 recent articles"
tidings import old.json >import-old.out 2>&1 || die "import old.json: $(tail -3 import-old.out)"
t0=$(now_ns)
tidings subscriber import subscribers.csv >import-subs.out 2>&1 || die "subscriber import: $(tail -3 import-subs.out)"
t1=$(now_ns)
IMPORT_S=$(secs "$t0" "$t1")
log "subscriber import: $(tail -1 import-subs.out) in $IMPORT_S s"
grep -q " 0 rejected" import-subs.out || die "subscriber import rejected rows: $(head -5 import-subs.out)"
put import_seconds "$IMPORT_S"; put subscribers "$SUBSCRIBERS"
if [ -n "$PG_URL" ]; then put database '"postgres"'; else put database '"sqlite"'; fi
sleep 1   # the recent articles enter the catalog strictly after every subscriber's window start
tidings import new.json >import-new.out 2>&1 || die "import new.json: $(tail -3 import-new.out)"
checkpoint "$DB"
if [ -n "$BASE_BIN" ]; then
    # The same input through the other build, which may know an older schema.
    log "base0.db: the same, made by $BASE_BIN"
    DB=$WORK/base0.db
    base_tidings() { env "$(db_env "$DB")" "$BASE_BIN" "$@"; }
    { base_tidings import old.json && base_tidings subscriber import subscribers.csv \
        && sleep 1 && base_tidings import new.json; } >import-base.out 2>&1 \
        || die "base0.db: $(tail -3 import-base.out)"
    checkpoint "$DB"
fi

# The digest's size: the same procedure for the first 400 rows of the mix, into .eml files.
head -401 subscribers.csv >sample.csv
DB=$WORK/sample.db
sample() { TIDINGS_DATABASE_PATH="$DB" "$BIN" "$@"; }
sample import old.json >/dev/null 2>&1 && sample subscriber import sample.csv >/dev/null 2>&1 \
    && sleep 1 && sample import new.json >/dev/null 2>&1 \
    && TIDINGS_MAIL_TRANSPORT="file:$WORK/outbox" sample digest run --now >sample.out 2>&1 \
    || die "sample digest run: $(tail -3 sample.out 2>/dev/null)"
read -r N_EML MEAN_EML MAX_EML < <(python3 -c "
import os, sys
d = sys.argv[1]; sizes = [os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith('.eml')]
print(len(sizes), round(sum(sizes) / max(len(sizes), 1)), max(sizes, default=0))" "$WORK/outbox")
[ "$N_EML" -eq 400 ] || die "sample run wrote $N_EML digests for 400 subscribers: $(cat sample.out)"
put message_bytes "$MEAN_EML"; put message_sample "$N_EML"
put message_max_bytes "$MAX_EML"
log "digest size: mean $MEAN_EML bytes over $N_EML subscribers, largest (every tag) $MAX_EML bytes"

# dry_run NAME DB: times `digest run --now --dry-run`; records results[NAME]
dry_run() {
    local name=$1 subs t0 t1 s line rss
    DB=$2
    if [ -n "$PG_URL" ]; then subs=$SUBSCRIBERS
    else subs=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM subscribers WHERE status='confirmed'\").fetchone()[0])" "$DB"); fi
    t0=$(now_ns)
    timeout -k 10 "$PLAN_LIMIT" /usr/bin/time -v -o "time-$name.txt" \
        env "$(db_env "$DB")" "$BIN" digest run --now --dry-run 2>"$name.err" | tail -n 1 >"$name.out" \
        || die "dry run $name failed or took over $PLAN_LIMIT s: $(tail -3 "$name.err")"
    t1=$(now_ns)
    s=$(secs "$t0" "$t1")
    line=$(cat "$name.out")
    [[ $line =~ ^dry\ run:\ ([0-9]+)\ due,\ ([0-9]+)\ would ]] || die "dry run $name: unexpected '$line'"
    rss=$(time_field "time-$name.txt" "Maximum resident set size (kbytes)")
    put "$name" "{\"subscribers\": $subs, \"due\": ${BASH_REMATCH[1]}, \"planned\": ${BASH_REMATCH[2]}, \"seconds\": $s, \"rss_kb\": $rss}"
    log "$name: $line, in $s s, peak RSS $((rss / 1024)) MB"
}
copy_db "$WORK/base.db" "$WORK/plan.db"
dry_run plan_100k "$WORK/plan.db"
drop_db "$WORK/plan.db"

# ---------------------------------------------------------------- 3. sending
DB=$WORK/keys.db
tidings dkim keygen --algorithm ed25519 --out "$WORK/ed25519.pem" --selector s --domain example.com >/dev/null
tidings dkim keygen --algorithm rsa --out "$WORK/rsa.pem" --selector s --domain example.com >/dev/null

send_run() {
    local v=$1 dkim=() before after t0 t1 s line sent rate rss cpu sink0 sink1 tick pid
    local bin=$BIN from=$WORK/base.db
    case $v in
        none) ;;
        # The other build (BENCH_BASE_BIN), on its own copy of the input.
        base) bin=$BASE_BIN; from=$WORK/base0.db ;;
        # VERP: every digest's envelope sender is bounces+<tag>@example.com (a MAC per message).
        verp) dkim=(TIDINGS_MAIL_RETURN_PATH=bounces@example.com) ;;
        # Two nodes on one database (PostgreSQL): a second `digest run` started with the first.
        2nodes) [ -n "$PG_URL" ] || die "2nodes needs BENCH_PG_URL" ;;
        # The same as none, with tidings' connections over TLS: BENCH_PG_TLS replaces the query
        # of its database URL (say sslmode=verify-full&sslrootcert=/path/ca.crt).
        tls) [ -n "$PG_URL" ] && [ -n "${BENCH_PG_TLS:-}" ] || die "tls needs BENCH_PG_URL and BENCH_PG_TLS" ;;
        ed25519|rsa) dkim=(TIDINGS_MAIL_DKIM_SELECTOR=s TIDINGS_MAIL_DKIM_DOMAIN=example.com
                           "TIDINGS_MAIL_DKIM_PRIVATE_KEY=$WORK/$v.pem") ;;
        *) die "unknown variant $v" ;;
    esac
    copy_db "$from" "$WORK/run-$v.db"
    local dbe; dbe=$(db_env "$WORK/run-$v.db")
    if [ "$v" = tls ]; then
        dbe="TIDINGS_DATABASE_URL=$(python3 -c "import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(query=sys.argv[2])))" "${dbe#TIDINGS_DATABASE_URL=}" "$BENCH_PG_TLS")"
    fi
    before=$(sink_count)
    sink0=$($PY procstat "$SINK_PID")
    t0=$(now_ns)
    # SIGINT at the limit: tidings stops taking deliveries, finishes those in flight, and reports.
    timeout -k 30 -s INT "$SEND_LIMIT" /usr/bin/time -v -o "time-$v.txt" \
        env "$dbe" "${dkim[@]}" "$bin" digest run --now \
        >"send-$v.out" 2>"send-$v.err" &
    pid=$!
    PIDS+=("$pid")
    local second=
    if [ "$v" = 2nodes ]; then
        env "$(db_env "$WORK/run-$v.db")" "$BIN" digest run --now >"send-$v-b.out" 2>"send-$v-b.err" &
        second=$!
        PIDS+=("$second")
    fi
    if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
        sleep 3   # past planning (under a second for 100,000), into sending
        local tp; tp=$(pgrep -n -x tidings -P "$(pgrep -n -P "$pid" time || echo 0)" || true)
        if [ -n "$tp" ]; then
            perf record -F 499 -p "$tp" -o "perf-$v.data" -- sleep 10 >/dev/null 2>&1 || true
            [ -s "perf-$v.data" ] && { perf report -i "perf-$v.data" --stdio --no-children \
                --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >"perf-$v.txt" || true; }
        fi
    fi
    wait "$pid" || true
    [ -n "$second" ] && { wait "$second" || true; }
    t1=$(now_ns)
    sleep 0.2
    after=$(sink_count)
    sink1=$($PY procstat "$SINK_PID")
    s=$(secs "$t0" "$t1")
    line=$(grep '^digest run:' "send-$v.out" | tail -1 || true)
    [[ $line =~ ([0-9]+)\ sent ]] || die "send run $v: no report: $(tail -5 "send-$v.err")"
    sent=${BASH_REMATCH[1]}
    if [ -n "$second" ]; then
        local other; other=$(grep '^digest run:' "send-$v-b.out" | tail -1 || true)
        [[ $other =~ ([0-9]+)\ sent ]] && sent=$((sent + BASH_REMATCH[1]))
        line="$line; second node: $other"
    fi
    rate=$(python3 -c "print(round($sent / $s, 1))")
    rss=$(time_field "time-$v.txt" "Maximum resident set size (kbytes)")
    cpu=$(time_field "time-$v.txt" "Percent of CPU this job got" | tr -d %)
    tick=$(getconf CLK_TCK)
    local sink_cpu; sink_cpu=$(python3 -c "print(round(100 * ($sink1 - $sink0) / $tick / $s))")
    local complete=false; [[ $line =~ ([0-9]+)\ planned ]] && [ "${BASH_REMATCH[1]}" = "$sent" ] && complete=true
    [ -n "$second" ] && [ "$sent" = "$SUBSCRIBERS" ] && complete=true
    [ $((after - before)) -eq "$sent" ] || log "warning: tidings reported $sent sent, smtp-sink counted $((after - before))"
    local json="{\"sent\": $sent, \"seconds\": $s, \"msgs\": $rate, \"rss_kb\": $rss, \"cpu_pct\": ${cpu:-0}, \"sink_cpu_pct\": $sink_cpu, \"complete\": $complete, \"time_limit\": $SEND_LIMIT, \"report\": \"$line\"}"
    put "variants.$v" "$json"
    add "$v" "$json"
    log "$v: $line; $sent in $s s = $rate msg/s, peak RSS $((rss / 1024)) MB, CPU tidings ${cpu}% smtp-sink ${sink_cpu}%"
    drop_db "$WORK/run-$v.db"
}
for v in $VARIANTS; do
    send_run "$v"
    baseline
done

# ---------------------------------------------------------------- 4. planning at scale
if [ "$BIG" -gt 0 ]; then
    cp base.db big.db
    t0=$(now_ns)
    total=$($PY grow "$WORK/big.db" "$BIG")
    log "big.db: $total confirmed subscribers (inserted in $(secs "$t0" "$(now_ns)") s)"
    dry_run plan_1m "$WORK/big.db"
    rm -f big.db*
fi

# ---------------------------------------------------------------- summary
put baselines "[$(IFS=,; echo "${BASELINES[*]}")]"
MEDIAN=$(python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 1))" "${BASELINES[@]}")
put baseline_msgs "$MEDIAN"
{
    echo "tidings $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ), $(nproc) cores;" \
         "load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg);" \
         "smtp-source runs (msg/s): ${BASELINES[*]} (median $MEDIAN)"
    $PY summary "$RESULTS"
} >summary.txt
cat summary.txt
[ -n "${BENCH_SUMMARY:-}" ] && cp summary.txt "$BENCH_SUMMARY"
[ -n "${BENCH_RESULTS:-}" ] && cp "$RESULTS" "$BENCH_RESULTS"
if [ "${BENCH_PERF:-0}" = 1 ]; then
    for f in perf-*.txt; do [ -f "$f" ] && { echo "== $f"; head -25 "$f"; }; done
fi
exit 0
