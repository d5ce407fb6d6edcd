#!/usr/bin/env bash
# Benchmarks tidings on this machine, all on 127.0.0.1, in one run of about 12-15 minutes (about 4
# more with BENCH_BASE_BIN; with BENCH_HUGE=1 add the generation, about 2 minutes for 1,000,000
# articles, their import, and on PostgreSQL `tidings migrate`, about 20 minutes), and prints one
# table with every catalog-scale figure and its target:
#   1. serve: hot feeds, a real 50-item /feed.xml: tidings against nginx serving tidings' own static
#      mirror (plain 200, conditional 304, gzip 200), and, with BENCH_BASE_BIN, against an earlier
#      build on its own copy of the same catalog; interleaved rounds of wrk in a turning order,
#      medians and ratios; and the feed audience's cost: 200 and 304 with a Feedly User-Agent
#      (modes a200, a304) against nginx and against the same build with counting off;
#   2. big: a 100,000-article / 1,000-tag catalog (about 115 MB of JSON): import rate and peak RSS,
#      start time, VmRSS after start, the mirror's files, every tag feed requested once in every
#      format (the first request of each tag timed: a cold feed), VmRSS after that, publish latency
#      (POST answered, and visible in the site feed and the tag feed) and VmRSS after the publishes;
#      `tidings_feed_cache_bytes` from /metrics at each VmRSS point ("n/a" when the build has none);
#   3. idle RSS with only the sample catalog;
#   4. huge (only with BENCH_HUGE=1): 1,000,000 articles over 10,000 tags: start time and VmRSS
#      after start. On PostgreSQL the catalog is imported into SQLite and copied with
#      `tidings migrate` (much faster than importing into PostgreSQL).
# Usage: bash scripts/bench.sh            (results: summary tables at the end; BENCHMARKS.md explains)
# Knobs (environment):
#   BENCH_BIN (the tidings binary to measure; default $CARGO_TARGET_DIR or target/, release/tidings;
#     setting it turns BENCH_BUILD off unless BENCH_BUILD=1 is given too),
#   BENCH_BUILD (1: cargo build --release first; default 1 unless BENCH_BIN is set),
#   BENCH_BASE_BIN (a release binary of an earlier commit, e.g. the commit before a change: started as
#     a third server in part 1 on its own database made by its own import, measured in every round;
#     the summary gives tidings / base, target >= 0.95),
#   BENCH_PARTS (the parts to run, default "serve big idle", plus "huge" when BENCH_HUGE=1),
#   BENCH_SERVE_ONLY (1: the same as BENCH_PARTS=serve),
#   part 1: BENCH_DURATION (s per wrk run, 10), BENCH_ROUNDS (5), BENCH_CONNECTIONS (64),
#     BENCH_THREADS (2), BENCH_GZIP (1: also run the gzip comparison), BENCH_AUDIENCE (1: also run
#     the audience modes), BENCH_MODES (the serve modes to run, default "200 304 gzip a200 a304" as
#     the two above allow), BENCH_PERF (1: record `perf` call graphs of tidings during one 200 and
#     one 304 run),
#   part 2: BENCH_ARTICLES (100000), BENCH_TAGS (1000), BENCH_CONTENT_BYTES (500: about 1,150 bytes
#     of JSON per article), BENCH_PUBLISHES (50), BENCH_PUBLISH_GAP (s between publishes, 0.2;
#     0 = back to back), BENCH_MIRROR_WAIT (s the mirror's file count must stay still to count as
#     complete, 3; at most 600 s in all),
#   part 4: BENCH_HUGE (1: run it), BENCH_HUGE_ARTICLES (1000000), BENCH_HUGE_TAGS (10000),
#     BENCH_HUGE_CONTENT_BYTES (100: about 490 bytes of JSON per article, 1,000,000 in about 470 MiB),
#     BENCH_HUGE_CATALOG (an existing JSON file to import instead of generating one; kept),
#     BENCH_HUGE_START_TIMEOUT (s to wait for `listening`, 600; past it the start is MISSED and the
#     VmRSS is read all the same),
#   BENCH_KEEP (1: keep the work folder, with the generated catalogs and databases, and the
#     PostgreSQL databases; otherwise all are deleted at the end),
#   BENCH_SUMMARY (file to copy the summary to),
#   BENCH_PG_URL (a PostgreSQL URL whose user may create databases: each part then runs on a
#     fresh database bench_serve, bench_serve_base, bench_big, bench_idle, bench_huge of that server
#     instead of a SQLite file).
# MB in the figures is MiB (VmRSS kB / 1024).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
ARTICLES=${BENCH_ARTICLES:-100000}
TAGS=${BENCH_TAGS:-1000}
PUBLISHES=${BENCH_PUBLISHES:-50}
PUBLISH_GAP=${BENCH_PUBLISH_GAP:-0.2}
GZIP=${BENCH_GZIP:-1}
AUDIENCE=${BENCH_AUDIENCE:-1}
CONTENT_BYTES=${BENCH_CONTENT_BYTES:-500}
MIRROR_WAIT=${BENCH_MIRROR_WAIT:-3}
HUGE_ARTICLES=${BENCH_HUGE_ARTICLES:-1000000}
HUGE_TAGS=${BENCH_HUGE_TAGS:-10000}
HUGE_CONTENT_BYTES=${BENCH_HUGE_CONTENT_BYTES:-100}
HUGE_START_TIMEOUT=${BENCH_HUGE_START_TIMEOUT:-600}
PARTS=${BENCH_PARTS:-serve big idle}
[ "${BENCH_SERVE_ONLY:-0}" = 1 ] && PARTS=serve
[ "${BENCH_HUGE:-0}" = 1 ] && [ -z "${BENCH_PARTS:-}" ] && PARTS="$PARTS huge"
has_part() { case " $PARTS " in *" $1 "*) return 0;; *) return 1;; esac; }
for part in $PARTS; do
    case $part in serve|big|idle|huge) ;; *) echo "BENCH_PARTS: unknown part '$part' (serve, big, idle, huge)" >&2; exit 2;; esac
done
# What a hosted reader sends; the audience modes send it to all three servers.
FEEDLY_UA='Feedly/1.0 (+http://www.feedly.com/fetcher.html; 134 subscribers; )'
TOKEN=bench-admin-token-0123456789abcdef
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tidings}
BUILD=${BENCH_BUILD:-1}
[ -n "${BENCH_BIN:-}" ] && BUILD=${BENCH_BUILD:-0}
BASE_BIN=${BENCH_BASE_BIN:-}
PG_URL=${BENCH_PG_URL:-}
SCRIPTS=$ROOT/scripts

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- 0. tools and build
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$BUILD" = 1 ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || die "no $BIN (run cargo build --release, or set BENCH_BIN)"
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || die "BENCH_BASE_BIN: $BASE_BIN is not an executable"
BIN=$(realpath "$BIN")
[ -z "$BASE_BIN" ] || BASE_BIN=$(realpath "$BASE_BIN")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench.XXXXXX")
chmod 755 "$WORK"
cd "$WORK"   # so no ./tidings.toml is picked up: everything comes from TIDINGS_* variables
mkdir -p wrk results
PIDS=()
NGINX_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}" $NGINX_PID; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "work folder kept: $WORK"
        [ -s "$WORK/pg-databases" ] && log "PostgreSQL databases kept: $(sort -u "$WORK/pg-databases" | paste -sd' ')"
    else
        if [ -s "$WORK/pg-databases" ]; then
            for db in $(sort -u "$WORK/pg-databases"); do
                psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || log "could not drop database $db"
            done
        fi
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_tidings NAME [--bin PATH] [--soft SECONDS] VAR=value...: starts the daemon ($BIN unless
# --bin) on a free port; sets T_PID, T_PORT, T_STARTUP_MS (exec to the `listening` line on its
# stdout). Not listening after 180 s stops the run; with --soft, after SECONDS it sets T_TIMED_OUT=1
# and T_STARTUP_MS to that time instead, and leaves the daemon running.
start_tidings() {
    local name=$1 bin=$BIN soft=; shift
    if [ "${1:-}" = --bin ]; then bin=$2; shift 2; fi
    if [ "${1:-}" = --soft ]; then soft=$2; shift 2; fi
    local limit=${soft:-180}
    local t0; t0=$(date +%s%N)
    T_TIMED_OUT=
    env TIDINGS_SERVER_BIND=127.0.0.1:0 "$@" "$bin" serve >"$name.out" 2>"$name.err" &
    T_PID=$!
    PIDS+=("$T_PID")
    while ! grep -q '^listening on ' "$name.out" 2>/dev/null; do
        kill -0 "$T_PID" 2>/dev/null || { tail -20 "$name.err" >&2; die "tidings ($name) exited"; }
        if [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge "$limit" ]; then
            [ -n "$soft" ] || die "tidings ($name) not listening after $limit s"
            T_TIMED_OUT=1; T_STARTUP_MS=$(( limit * 1000 )); T_PORT=
            log "warning: tidings ($name) not listening after $limit s"
            return 0
        fi
        sleep 0.005
    done
    T_STARTUP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    T_PORT=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9]*\).*#\1#p' "$name.out")
    [ -n "$T_PORT" ] || die "cannot read the port from $name.out"
}
stop_pid() {
    local pid=$1 p kept=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# cache_bytes PORT: tidings_feed_cache_bytes from /metrics (the sum of its series), or n/a.
cache_bytes() {
    curl -fsS --max-time 10 "http://127.0.0.1:$1/metrics" 2>/dev/null \
        | awk '$1 == "tidings_feed_cache_bytes" || index($1, "tidings_feed_cache_bytes{") == 1 {s += $2; n++}
               END {if (n) printf "%.0f", s; else print "n/a"}' \
        || echo n/a
}
# file_count DIR: the files in DIR (0 when it does not exist yet).
file_count() { find "$1" -type f 2>/dev/null | wc -l; }
# wait_mirror DIR EXPECTED: waits until DIR holds EXPECTED files or more, or its file count has
# stayed the same for $MIRROR_WAIT s (the mirror may be written by a thread in the background after
# start), at most 600 s; sets MIRROR_FILES and MIRROR_WAIT_MS (from the call until the count last
# grew).
wait_mirror() {
    local t0 n prev=-1 still=0 last
    t0=$(date +%s%N); last=$t0
    while :; do
        n=$(file_count "$1")
        if [ "$n" -ne "$prev" ]; then prev=$n; still=0; last=$(date +%s%N); else still=$(( still + 1 )); fi
        [ "$n" -ge "$2" ] && break
        [ "$n" -gt 0 ] && [ "$still" -ge $(( MIRROR_WAIT * 2 )) ] && break
        [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 600 ] || { log "warning: the mirror still grows after 600 s"; break; }
        sleep 0.5
    done
    MIRROR_FILES=$n
    MIRROR_WAIT_MS=$(( (last - t0) / 1000000 ))
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# db_var NAME: the variable that gives part NAME its own new database
# (on PostgreSQL a fresh database bench_NAME, dropped at the end unless BENCH_KEEP=1).
db_var() {
    if [ -n "$PG_URL" ]; then
        psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS bench_$1 WITH (FORCE)" -c "CREATE DATABASE bench_$1" >/dev/null 2>&1 \
            || die "cannot create database bench_$1 on $PG_URL"
        echo "bench_$1" >>"$WORK/pg-databases"
        python3 -c "import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print('TIDINGS_DATABASE_URL=' + u.urlunsplit(p._replace(path='/bench_' + sys.argv[2])))" "$PG_URL" "$1"
    else
        echo "TIDINGS_DATABASE_PATH=$WORK/$1/tidings.db"
    fi
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
header() { curl -fsS -o /dev/null -D - "${@:2}" | tr -d '\r' | awk -v h="$1" 'tolower($1)==tolower(h)":" {sub(/^[^:]*: */,""); print}'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE (anything else busy on these cores makes every figure noisier)"
log "parts: $PARTS; tidings: $BIN$([ -n "$BASE_BIN" ] && echo "; base: $BASE_BIN")"

# ---------------------------------------------------------------- 1. serve: tidings vs nginx (vs base)
if has_part serve; then
log "serve: generating 200 articles (~3 KB HTML each) and importing them with the sample catalog"
python3 "$SCRIPTS/bench_catalog.py" serve-catalog.json --articles 200 --tags 12 --content-bytes 3000 --prefix serve
SERVE_DB=$(db_var serve)
SERVE_ENV=("$SERVE_DB" TIDINGS_FEEDS_MIRROR_DIR="$WORK/serve/mirror"
           TIDINGS_CATALOG_LOAD_SAMPLE=true TIDINGS_FEEDS_ITEMS=50 RUST_LOG=warn)
env "${SERVE_ENV[@]}" "$BIN" import "$ROOT/data/sample-articles.json" >serve-import.out 2>&1 || { cat serve-import.out; die "import of the sample"; }
env "${SERVE_ENV[@]}" "$BIN" import serve-catalog.json >>serve-import.out 2>&1 || { cat serve-import.out; die "import of serve-catalog.json"; }
start_tidings serve "${SERVE_ENV[@]}"
TP=$T_PORT; TPID=$T_PID
TURL=http://127.0.0.1:$TP/feed.xml
BASEPID=
if [ -n "$BASE_BIN" ]; then
    # The earlier build on a database of its own, made by its own import of the same two catalogs
    # (a newer build's schema may be one it cannot open).
    BASE_DB=$(db_var serve_base)
    BASE_ENV=("$BASE_DB" TIDINGS_FEEDS_MIRROR_DIR="$WORK/serve_base/mirror"
              TIDINGS_CATALOG_LOAD_SAMPLE=true TIDINGS_FEEDS_ITEMS=50 RUST_LOG=warn)
    env "${BASE_ENV[@]}" "$BASE_BIN" import "$ROOT/data/sample-articles.json" >serve-base-import.out 2>&1 || { cat serve-base-import.out; die "base: import of the sample"; }
    env "${BASE_ENV[@]}" "$BASE_BIN" import serve-catalog.json >>serve-base-import.out 2>&1 || { cat serve-base-import.out; die "base: import of serve-catalog.json"; }
    start_tidings serve-base --bin "$BASE_BIN" "${BASE_ENV[@]}"
    BASEP=$T_PORT; BASEPID=$T_PID
    BURL=http://127.0.0.1:$BASEP/feed.xml
fi

NP=$(free_port)
mkdir -p nginx
# The mirror files are written 0600 by the daemon's user, so nginx's workers run as that user too.
NGINX_USER=
[ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"
cat >nginx/nginx.conf <<EOF
$NGINX_USER
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    types { application/rss+xml xml; application/feed+json json; text/html html; }
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/rss+xml application/feed+json;
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    etag on;
    gzip off;
    gzip_static on;
    gzip_vary on;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NP;
        root $WORK/serve/mirror;
        location / { add_header Cache-Control "public, max-age=300"; }
    }
}
EOF
"$NGINX" -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" || die "nginx -t"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" 2>>nginx/error.log &
NGINX_PID=$!
NURL=http://127.0.0.1:$NP/feed.xml

# Wait for the mirror (written by a thread of its own) and for nginx, then check the bodies.
for _ in $(seq 300); do
    if [ -f serve/mirror/feed.xml.gz ] && curl -fsS -o nginx-feed.xml "$NURL" 2>/dev/null \
        && curl -fsS -o tidings-feed.xml "$TURL" && cmp -s tidings-feed.xml nginx-feed.xml; then break; fi
    sleep 0.1
done
cmp tidings-feed.xml nginx-feed.xml || die "tidings and nginx serve different /feed.xml bodies"
curl -fsS -H 'Accept-Encoding: gzip' -o tidings-feed.xml.gz "$TURL"
curl -fsS -H 'Accept-Encoding: gzip' -o nginx-feed.xml.gz "$NURL"
cmp tidings-feed.xml.gz nginx-feed.xml.gz || die "tidings and nginx serve different gzip bodies"
ITEMS=$(grep -o '<item>' tidings-feed.xml | wc -l)
FEED_BYTES=$(stat -c %s tidings-feed.xml)
GZ_BYTES=$(stat -c %s tidings-feed.xml.gz)
[ "$ITEMS" -eq 50 ] || die "/feed.xml has $ITEMS items, expected 50"
T_ETAG=$(header etag "$TURL")
N_ETAG=$(header etag "$NURL")
for pair in "$TURL|$T_ETAG" "$NURL|$N_ETAG"; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: ${pair#*|}" "${pair%%|*}")
    [ "$code" = 304 ] || die "${pair%%|*} answered $code, not 304, to If-None-Match ${pair#*|}"
done
log "serve: /feed.xml is $ITEMS items, $FEED_BYTES bytes ($GZ_BYTES gzipped), byte-identical on both; ETags $T_ETAG / $N_ETAG"
if [ -n "$BASEPID" ]; then
    curl -fsS -o base-feed.xml "$BURL"
    B_ETAG=$(header etag "$BURL")
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $B_ETAG" "$BURL")
    [ "$code" = 304 ] || die "$BURL (base) answered $code, not 304, to If-None-Match $B_ETAG"
    # Each import draws its own GUIDs (urn:uuid:…, all of one length); the rest must be equal.
    unguid() { sed 's/urn:uuid:[0-9a-f-]*/urn:uuid:/g' "$1"; }
    if cmp -s <(unguid tidings-feed.xml) <(unguid base-feed.xml); then
        log "serve: the base build on port $BASEP serves the same /feed.xml but for the GUIDs ($(stat -c %s base-feed.xml) bytes); ETag $B_ETAG"
    else
        log "warning: the base build serves another /feed.xml ($(stat -c %s base-feed.xml) bytes against $FEED_BYTES); the ratios compare unequal work"
    fi
fi
OPID=
if [ "$AUDIENCE" = 1 ]; then
    # The same build and database with counting off: the audience modes' second baseline.
    start_tidings serve-off "${SERVE_ENV[@]}" TIDINGS_FEEDS_MIRROR_DIR="$WORK/serve/mirror-off" TIDINGS_AUDIENCE_ENABLED=false
    OP=$T_PORT; OPID=$T_PID
    OURL=http://127.0.0.1:$OP/feed.xml
    curl -fsS -o off-feed.xml "$OURL"
    cmp tidings-feed.xml off-feed.xml || die "tidings with counting on and off serve different /feed.xml bodies"
    [ "$(header etag "$OURL")" = "$T_ETAG" ] || die "tidings with counting off has another ETag"
    log "serve: tidings with audience.enabled=false on port $OP serves the same bytes and ETag"
fi
{ echo "tidings:"; curl -sS -D - -o /dev/null "$TURL"; echo "nginx:"; curl -sS -D - -o /dev/null "$NURL"
  [ -n "$BASEPID" ] && { echo "base:"; curl -sS -D - -o /dev/null "$BURL"; }; } >results/headers.txt

# run_wrk SERVER MODE URL [wrk args...]: one run, its req/s appended to results/SERVER-MODE.
# cpu_ticks PID...: user + system time of these processes so far, in clock ticks.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo "$t"; }
# server_pids SERVER: the processes that do SERVER's work (nginx: the master and its workers).
server_pids() {
    case $1 in
    tidings) echo "$TPID" ;;
    tidings-off) echo "$OPID" ;;
    base) echo "$BASEPID" ;;
    nginx) echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
    esac
}
# run_wrk SERVER MODE URL [wrk args...]: one run, its req/s appended to results/SERVER-MODE and
# the server's CPU time per request (µs, from /proc: unlike req/s, it hardly moves when other
# work shares the cores) to results/SERVER-MODE.cpu.
run_wrk() {
    local server=$1 mode=$2 url=$3; shift 3
    local out=wrk/$server-$mode-$round.txt
    local pids; pids=$(server_pids "$server")
    local t0; t0=$(cpu_ticks $pids)
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s "$@" "$url" >"$out" 2>&1 || { cat "$out"; die "wrk"; }
    local t1; t1=$(cpu_ticks $pids)
    local rps; rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    [ -n "$rps" ] || { cat "$out"; die "no Requests/sec in $out"; }
    local requests; requests=$(awk '/requests in/ {print $1}' "$out")
    local cpu; cpu=$(awk -v t=$(( t1 - t0 )) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.3f", t / hz * 1e6 / n}')
    if grep -q -E 'Non-2xx or 3xx|Socket errors' "$out"; then log "warning: $(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ')"; fi
    echo "$rps" >>"results/$server-$mode"
    echo "$cpu" >>"results/$server-$mode.cpu"
    log "  round $round $mode $server: $rps req/s, $cpu µs CPU per request"
}
MODES="200 304"
[ "$GZIP" = 1 ] && MODES="$MODES gzip"
[ "$AUDIENCE" = 1 ] && MODES="$MODES a200 a304"
MODES=${BENCH_MODES:-$MODES}
SERVERS=(tidings nginx)
[ -n "$BASEPID" ] && SERVERS+=(base)
log "serve: wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds, interleaved (modes: $MODES; servers: ${SERVERS[*]})"
# hot MODE: one run of each server, in an order that turns by one every round.
hot() {
    local mode=$1 who order=("${SERVERS[@]}") url etag
    for _ in $(seq $(( (round - 1) % ${#SERVERS[@]} ))); do order=("${order[@]:1}" "${order[0]}"); done
    for who in "${order[@]}"; do
        case $who in
        tidings) url=$TURL; etag=$T_ETAG ;;
        nginx) url=$NURL; etag=$N_ETAG ;;
        base) url=$BURL; etag=$B_ETAG ;;
        esac
        case $mode in
        200)  run_wrk "$who" 200 "$url" ;;
        304)  run_wrk "$who" 304 "$url" -H "If-None-Match: $etag" ;;
        gzip) run_wrk "$who" gzip "$url" -H 'Accept-Encoding: gzip' ;;
        esac
    done
}
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        case $mode in
        200|304|gzip) hot $mode ;;
        # The audience's cost: counting on, counting off, nginx, in a turning order.
        a200|a304)
              etag_on=(); etag_off=(); etag_n=()
              if [ $mode = a304 ]; then
                  etag_on=(-H "If-None-Match: $T_ETAG"); etag_off=("${etag_on[@]}"); etag_n=(-H "If-None-Match: $N_ETAG")
              fi
              order=(on off nginx)
              for _ in $(seq $(( round % 3 ))); do order=("${order[@]:1}" "${order[0]}"); done
              for who in "${order[@]}"; do
                  case $who in
                  on)    run_wrk tidings $mode "$TURL" -H "User-Agent: $FEEDLY_UA" "${etag_on[@]}" ;;
                  off)   run_wrk tidings-off $mode "$OURL" -H "User-Agent: $FEEDLY_UA" "${etag_off[@]}" ;;
                  nginx) run_wrk nginx $mode "$NURL" -H "User-Agent: $FEEDLY_UA" "${etag_n[@]}" ;;
                  esac
              done ;;
        esac
    done
done
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
    for mode in 200 304; do
        extra=(); [ $mode = 304 ] && extra=(-H "If-None-Match: $T_ETAG")
        wrk -t"$THREADS" -c"$CONNS" -d8s "${extra[@]}" "$TURL" >/dev/null 2>&1 &
        wpid=$!
        sleep 1
        perf record -q -g -p "$TPID" -o "perf-$mode.data" -- sleep 5 >/dev/null 2>&1 || true
        wait $wpid || true
        perf report -i "perf-$mode.data" --no-children --stdio --percent-limit 1.5 2>/dev/null \
            | grep -v '^$' | head -80 >"results/perf-$mode.txt" || true
        log "perf profile of tidings during $mode: results/perf-$mode.txt (keep with BENCH_KEEP=1)"
    done
fi
SERVE_RSS_KB=$(rss_kb "$TPID")
stop_pid "$TPID"
[ -n "$OPID" ] && stop_pid "$OPID"
[ -n "$BASEPID" ] && stop_pid "$BASEPID"
if [ "$AUDIENCE" = 1 ]; then
    # What the counting daemon wrote at its stop: the Feedly count, read back as an admin would.
    env "${SERVE_ENV[@]}" "$BIN" audience >results/audience.txt 2>&1 || { cat results/audience.txt; die "tidings audience"; }
    grep -q 'Feedly .*134 subscribers' results/audience.txt || { cat results/audience.txt; die "the Feedly count was not recorded"; }
fi
kill -QUIT "$NGINX_PID" 2>/dev/null || true
wait "$NGINX_PID" 2>/dev/null || true
NGINX_PID=
fi

# ---------------------------------------------------------------- 2. a big catalog: import, startup, feeds, publish
if has_part big; then
log "big: generating $ARTICLES articles over $TAGS tags (--content-bytes $CONTENT_BYTES)"
python3 "$SCRIPTS/bench_catalog.py" big-catalog.json --articles "$ARTICLES" --tags "$TAGS" --content-bytes "$CONTENT_BYTES" --prefix big
BIG_JSON_MB=$(( $(stat -c %s big-catalog.json) / 1048576 ))
BIG_DB=$(db_var big)
BIG_ENV=("$BIG_DB" TIDINGS_FEEDS_MIRROR_DIR="$WORK/big/mirror"
         TIDINGS_CATALOG_LOAD_SAMPLE=false TIDINGS_FEEDS_ITEMS=50 TIDINGS_ADMIN_TOKEN="$TOKEN" RUST_LOG=info)
log "big: importing big-catalog.json ($BIG_JSON_MB MiB) into a fresh database"
t0=$(date +%s%N)
/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' -o big-import.time \
    env "${BIG_ENV[@]}" "$BIN" import big-catalog.json >big-import.out 2>big-import.err || { tail -5 big-import.err; die "import"; }
IMPORT_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
IMPORT_RATE=$(( ARTICLES * 1000 / (IMPORT_MS > 0 ? IMPORT_MS : 1) ))
IMPORT_PEAK_KB=$(sed -n 's/.* \([0-9]*\) KB max RSS.*/\1/p' big-import.time)
log "big: $(tail -1 big-import.out) in $IMPORT_MS ms ($IMPORT_RATE articles/s; $(cat big-import.time))"
# The database: its file on SQLite, pg_database_size on PostgreSQL (before start: no mirror yet).
if [ -n "$PG_URL" ]; then
    DB_MB=$(( $(psql -Atq "$PG_URL" -c "SELECT pg_database_size('bench_big')") / 1048576 ))
else
    DB_MB=$(( $( (du -sk big 2>/dev/null || echo 0) | cut -f1) / 1024 ))
fi

start_tidings big "${BIG_ENV[@]}"
BPID=$T_PID; BP=$T_PORT; BIG_STARTUP_MS=$T_STARTUP_MS
BIG_RSS_KB=$(rss_kb "$BPID"); BIG_CACHE=$(cache_bytes "$BP")
log "big: listening after $BIG_STARTUP_MS ms, VmRSS $BIG_RSS_KB kB, feed cache $BIG_CACHE bytes"
# Let the mirror of every feed be written before timing anything (it is another thread's disk
# work, and may run in the background after start): until its file count stops growing.
# Every feed in three formats, each with its .gz, and the index page with its .gz.
MIRROR_EXPECTED=$(( 6 * (TAGS + 1) + 2 ))
wait_mirror big/mirror "$MIRROR_EXPECTED"
[ "$MIRROR_FILES" -ge "$MIRROR_EXPECTED" ] || log "warning: the mirror holds $MIRROR_FILES files, not the $MIRROR_EXPECTED of every feed"
BIG_RSS_MIRROR_KB=$(rss_kb "$BPID"); BIG_CACHE_MIRROR=$(cache_bytes "$BP")
MIRROR_MB=$(( $(du -sk big/mirror | cut -f1) / 1024 ))
log "big: the mirror holds $MIRROR_FILES files of $MIRROR_EXPECTED ($MIRROR_MB MiB), the last written $MIRROR_WAIT_MS ms after the wait began; VmRSS $BIG_RSS_MIRROR_KB kB, feed cache $BIG_CACHE_MIRROR bytes"
log "big: requesting every tag feed once in every format ($(( TAGS * 3 )) requests, one at a time)"
python3 "$SCRIPTS/bench_feeds.py" --port "$BP" --tags "$TAGS" >results/feeds.txt || die "tag feed sweep"
feeds() { awk -v k="$1" '$1==k {print $2}' results/feeds.txt; }
COLD_MED=$(feeds cold_median_ms); COLD_P90=$(feeds cold_p90_ms); COLD_MAX=$(feeds cold_max_ms); COLD_N=$(feeds cold_count)
ALL_MED=$(feeds all_median_ms); ALL_P90=$(feeds all_p90_ms); ALL_N=$(feeds all_count)
SWEEP_S=$(feeds seconds); SWEEP_MISSING=$(feeds missing); SWEEP_MB=$(( $(feeds bytes) / 1048576 ))
BIG_RSS_SWEEP_KB=$(rss_kb "$BPID"); BIG_CACHE_SWEEP=$(cache_bytes "$BP")
log "big: first request of each of $COLD_N tags: median $COLD_MED ms, p90 $COLD_P90 ms, max $COLD_MAX ms; all $ALL_N: median $ALL_MED ms ($SWEEP_MB MiB in $SWEEP_S s, $SWEEP_MISSING 404s)"
log "big: after the sweep VmRSS $BIG_RSS_SWEEP_KB kB, feed cache $BIG_CACHE_SWEEP bytes; posting $PUBLISHES articles"
python3 "$SCRIPTS/bench_publish.py" --port "$BP" --token "$TOKEN" --count "$PUBLISHES" --tags "$TAGS" --gap "$PUBLISH_GAP" >results/publish.txt \
    || die "publish benchmark"
pub() { awk -v k="$1" '$1==k {print $2}' results/publish.txt; }
PUB_MED=$(pub visible_median_ms); PUB_P90=$(pub visible_p90_ms); PUB_MAX=$(pub visible_max_ms)
POST_MED=$(pub post_median_ms); POST_P90=$(pub post_p90_ms)
BIG_RSS_PUB_KB=$(rss_kb "$BPID"); BIG_HWM_KB=$(hwm_kb "$BPID"); BIG_CACHE_PUB=$(cache_bytes "$BP")
log "big: visible median $PUB_MED ms, p90 $PUB_P90 ms, max $PUB_MAX ms (POST answered: median $POST_MED, p90 $POST_P90 ms)"
log "big: after the publishes VmRSS $BIG_RSS_PUB_KB kB (peak $BIG_HWM_KB kB), feed cache $BIG_CACHE_PUB bytes"
# The daemon logs how long each re-render took ("feeds updated feeds=N ms=M"): the server-side share.
sed 's/\x1b\[[0-9;]*m//g' big.err | sed -n 's/.*feeds updated feeds=\([0-9]*\) ms=\([0-9]*\).*/\1 \2/p' >results/publish-render.txt || true
RENDER_MED=$(awk '{print $2}' results/publish-render.txt | median)
RENDER_FEEDS=$(awk '{print $1}' results/publish-render.txt | median)
stop_pid "$BPID"
[ "${BENCH_KEEP:-0}" = 1 ] || rm -f big-catalog.json
fi

# ---------------------------------------------------------------- 3. idle RSS, sample catalog only
if has_part idle; then
log "idle: fresh database with the sample catalog"
IDLE_DB=$(db_var idle)
start_tidings idle "$IDLE_DB" TIDINGS_FEEDS_MIRROR_DIR="$WORK/idle/mirror" \
    TIDINGS_CATALOG_LOAD_SAMPLE=true
IPID=$T_PID; IDLE_STARTUP_MS=$T_STARTUP_MS
curl -fsS -o /dev/null "http://127.0.0.1:$T_PORT/feed.xml"
sleep 3
IDLE_RSS_KB=$(rss_kb "$IPID")
stop_pid "$IPID"
fi

# ---------------------------------------------------------------- 4. huge: 1,000,000 articles, start and memory
if has_part huge; then
if [ -n "${BENCH_HUGE_CATALOG:-}" ]; then
    HUGE_JSON=$(realpath "$BENCH_HUGE_CATALOG")
    [ -f "$HUGE_JSON" ] || die "BENCH_HUGE_CATALOG: no file $BENCH_HUGE_CATALOG"
    log "huge: importing $HUGE_JSON (BENCH_HUGE_CATALOG; BENCH_HUGE_ARTICLES=$HUGE_ARTICLES and BENCH_HUGE_TAGS=$HUGE_TAGS must describe it)"
else
    HUGE_JSON=$WORK/huge-catalog.json
    log "huge: generating $HUGE_ARTICLES articles over $HUGE_TAGS tags (--content-bytes $HUGE_CONTENT_BYTES)"
    t0=$(date +%s%N)
    python3 "$SCRIPTS/bench_catalog.py" "$HUGE_JSON" --articles "$HUGE_ARTICLES" --tags "$HUGE_TAGS" \
        --content-bytes "$HUGE_CONTENT_BYTES" --prefix huge
    log "huge: generated in $(( ($(date +%s%N) - t0) / 1000000000 )) s"
fi
HUGE_JSON_MB=$(( $(stat -c %s "$HUGE_JSON") / 1048576 ))
# Imported into SQLite; on PostgreSQL then copied by `tidings migrate`, far faster than an import
# into PostgreSQL, and the same rows.
HUGE_SQLITE=(TIDINGS_DATABASE_PATH="$WORK/huge/tidings.db" TIDINGS_CATALOG_LOAD_SAMPLE=false RUST_LOG=info)
log "huge: importing ${HUGE_JSON##*/} ($HUGE_JSON_MB MiB) into SQLite"
t0=$(date +%s%N)
/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' -o huge-import.time \
    env "${HUGE_SQLITE[@]}" "$BIN" import "$HUGE_JSON" >huge-import.out 2>huge-import.err || { tail -5 huge-import.err; die "huge import"; }
HUGE_IMPORT_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
HUGE_IMPORT_PEAK_KB=$(sed -n 's/.* \([0-9]*\) KB max RSS.*/\1/p' huge-import.time)
log "huge: $(tail -1 huge-import.out) in $HUGE_IMPORT_MS ms ($(cat huge-import.time))"
HUGE_DB_MB=$(( $(du -sk huge | cut -f1) / 1024 ))
HUGE_MIGRATE_MS=
if [ -n "$PG_URL" ]; then
    HUGE_DB=$(db_var huge)
    log "huge: tidings migrate into bench_huge"
    t0=$(date +%s%N)
    env "${HUGE_SQLITE[@]}" TIDINGS_MIGRATE_TO="${HUGE_DB#TIDINGS_DATABASE_URL=}" "$BIN" migrate >huge-migrate.out 2>huge-migrate.err \
        || { tail -5 huge-migrate.err; die "tidings migrate"; }
    HUGE_MIGRATE_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    log "huge: copied $(grep -o 'articles [0-9]*, tags [0-9]*, article_tags [0-9]*' huge-migrate.out | head -1) in $HUGE_MIGRATE_MS ms"
    HUGE_DB_MB=$(( $(psql -Atq "$PG_URL" -c "SELECT pg_database_size('bench_huge')") / 1048576 ))
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK/huge"
else
    HUGE_DB=TIDINGS_DATABASE_PATH=$WORK/huge/tidings.db
fi
[ -n "${BENCH_HUGE_CATALOG:-}" ] || [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$HUGE_JSON"
# A build that renders every feed at start may take many minutes here: past
# BENCH_HUGE_START_TIMEOUT the figures are taken as they are and the start is reported as MISSED.
start_tidings huge --soft "$HUGE_START_TIMEOUT" "$HUGE_DB" TIDINGS_FEEDS_MIRROR_DIR="$WORK/huge-mirror" \
    TIDINGS_CATALOG_LOAD_SAMPLE=false TIDINGS_FEEDS_ITEMS=50 RUST_LOG=info
HPID=$T_PID; HP=$T_PORT; HUGE_STARTUP_MS=$T_STARTUP_MS
HUGE_RSS_KB=$(rss_kb "$HPID"); HUGE_CACHE=n/a
if [ -z "$T_TIMED_OUT" ]; then
    HUGE_CACHE=$(cache_bytes "$HP")
    log "huge: listening after $HUGE_STARTUP_MS ms, VmRSS $HUGE_RSS_KB kB, feed cache $HUGE_CACHE bytes"
    # A few seconds more, for what start leaves to the background (the mirror): the peak so far.
    curl -fsS -o /dev/null "http://127.0.0.1:$HP/feed.xml" || die "huge: GET /feed.xml"
else
    HUGE_STARTUP_MS=">$HUGE_STARTUP_MS"
    log "huge: VmRSS $HUGE_RSS_KB kB at $HUGE_START_TIMEOUT s, still starting"
fi
sleep 5
HUGE_RSS5_KB=$(rss_kb "$HPID"); HUGE_HWM_KB=$(hwm_kb "$HPID"); HUGE_MIRROR_FILES=$(file_count "$WORK/huge-mirror")
log "huge: 5 s later VmRSS $HUGE_RSS5_KB kB (peak $HUGE_HWM_KB kB), mirror $HUGE_MIRROR_FILES files so far"
HUGE_RSS_LABEL="VmRSS after that start"
# Still starting: the peak so far stands for the memory after start (a lower bound of it).
[ -z "$T_TIMED_OUT" ] || { HUGE_RSS_KB=$HUGE_HWM_KB; HUGE_RSS_LABEL="VmRSS: still starting, the peak so far"; }
stop_pid "$HPID"
fi

# ---------------------------------------------------------------- summary
med() { [ -s "results/$1" ] && median <"results/$1" || echo nan; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.2f", a / b}'; }
mb() { [ -n "$1" ] && awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}' || echo nan; }
# cache_mb BYTES: a tidings_feed_cache_bytes reading in MB, or n/a.
cache_mb() { case ${1:-n/a} in n/a) echo n/a;; *) awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1048576}';; esac; }
# verdict VALUE OP TARGET: met or MISSED (nothing when the value is missing).
verdict() {
    case ${1:-nan} in nan|n/a) echo "";; '>'*) [ "$2" = "<=" ] && echo MISSED || echo "";; *) awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "MISSED"}';; esac
}
# row FIGURE VALUE UNIT CACHE OP TARGET: one line of the catalog-scale table.
row() {
    local value=$2
    [ -n "$value" ] && [ "$value" != nan ] || value=nan
    local shown=$value
    [ "$value" = nan ] || shown="$value$3"
    echo "| $1 | $shown | $4 | $5 $6$3 | $(verdict "$value" "$5" "$6") |"
}
ENGINE=SQLite
[ -n "$PG_URL" ] && ENGINE="PostgreSQL $(psql -Atq "$PG_URL" -c 'SHOW server_version' 2>/dev/null | cut -d' ' -f1)"
{
    echo "## tidings benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)'), $ENGINE"
    echo
    echo "load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "tidings: $BIN$([ -n "$BASE_BIN" ] && echo "; base: $BASE_BIN")"
    echo "parts: $PARTS"
    echo
    echo "### Catalog scale: every figure and its target ($ENGINE)"
    echo
    echo "MB = MiB. Feed cache: \`tidings_feed_cache_bytes\` from /metrics at the same moment as the VmRSS (n/a: this build has no such metric)."
    echo
    echo "| figure | value | feed cache | target | |"
    echo "| --- | ---: | ---: | --- | --- |"
    if has_part serve; then
        for mode in 200 304; do
            case " $MODES " in *" $mode "*) ;; *) continue;; esac
            case $mode in 200) label="hot /feed.xml, GET 200";; 304) label="hot /feed.xml, If-None-Match 304";; esac
            t=$(med tidings-$mode)
            row "$label: tidings / nginx (req/s, median of $ROUNDS)" "$(ratio "$t" "$(med nginx-$mode)")" "×" "" ">=" 1.00
            if [ -n "$BASE_BIN" ]; then
                row "$label: tidings / base (req/s, median of $ROUNDS)" "$(ratio "$t" "$(med base-$mode)")" "×" "" ">=" 0.95
            else
                echo "| $label: tidings / base | not measured (BENCH_BASE_BIN unset) | | >= 0.95× | |"
            fi
        done
    fi
    if has_part big; then
        C="$ARTICLES articles / $TAGS tags"
        row "import of $C ($BIG_JSON_MB MiB of JSON): peak RSS" "$(mb "$IMPORT_PEAK_KB")" " MB" "" "<=" 128
        row "import of $C: rate" "$IMPORT_RATE" " articles/s" "" ">=" 10000
        row "start on $C, exec to \`listening\`" "$BIG_STARTUP_MS" " ms" "" "<=" 2000
        row "VmRSS after start" "$(mb "$BIG_RSS_KB")" " MB" "$(cache_mb "$BIG_CACHE")" "<=" 128
        row "a cold tag feed: first request of each of $COLD_N tags, p50" "$COLD_MED" " ms" "" "<=" 20
        row "VmRSS after every tag feed requested once in every format ($ALL_N requests)" "$(mb "$BIG_RSS_SWEEP_KB")" " MB" "$(cache_mb "$BIG_CACHE_SWEEP")" "<=" 128
        row "publish ($PUBLISHES posts, ${PUBLISH_GAP} s apart): POST answered, p50" "$POST_MED" " ms" "" "<=" 10
        row "publish: visible in /feed.xml and the tag feed, p50" "$PUB_MED" " ms" "" "<=" 10
        row "VmRSS after $PUBLISHES publishes" "$(mb "$BIG_RSS_PUB_KB")" " MB" "$(cache_mb "$BIG_CACHE_PUB")" "<=" 128
    fi
    if has_part huge; then
        row "start on $HUGE_ARTICLES articles / $HUGE_TAGS tags, exec to \`listening\`" "$HUGE_STARTUP_MS" " ms" "" "<=" 10000
        row "$HUGE_RSS_LABEL" "$(mb "$HUGE_RSS_KB")" " MB" "$(cache_mb "$HUGE_CACHE")" "<=" 256
    fi
    if has_part serve; then
    echo
    echo "### Hot feeds"
    echo
    echo "/feed.xml: $ITEMS items, $FEED_BYTES bytes ($GZ_BYTES gzipped); wrk -t$THREADS -c$CONNS -d${DURATION}s, median of $ROUNDS interleaved rounds (the order of the servers turns every round)"
    echo
    echo "| measure | tidings | nginx | base | tidings / nginx | target | | tidings / base | target | |"
    echo "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | --- |"
    for mode in $MODES; do
        case $mode in a200|a304) continue;; esac
        t=$(med tidings-$mode); n=$(med nginx-$mode); r=$(ratio "$t" "$n")
        b=-; rb=-; tn="(none)"; tb="(none)"; vn=""; vb=""
        case $mode in 200) label="GET 200 req/s";; 304) label="If-None-Match 304 req/s";; gzip) label="gzip 200 req/s";; esac
        [ $mode = gzip ] || { tn=">= 1.00"; vn=$(verdict "$r" ">=" 1.0); }
        if [ -n "$BASE_BIN" ]; then
            b=$(med base-$mode); rb=$(ratio "$t" "$b")
            [ $mode = gzip ] || { tb=">= 0.95"; vb=$(verdict "$rb" ">=" 0.95); }
        fi
        echo "| $label | $t | $n | $b | $r | $tn | $vn | $rb | $tb | $vb |"
    done
    echo
    echo "The same runs as the servers' CPU time per request (µs, user + system, median): less"
    echo "sensitive than req/s to other work on the cores."
    echo
    echo "| measure | tidings | nginx | base | tidings / nginx | tidings / base |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for mode in $MODES; do
        case $mode in a200|a304) continue;; esac
        t=$(med tidings-$mode.cpu); n=$(med nginx-$mode.cpu); b=-; rb=-
        [ -n "$BASE_BIN" ] && { b=$(med base-$mode.cpu); rb=$(ratio "$t" "$b"); }
        echo "| $mode, µs/request | $t | $n | $b | $(ratio "$t" "$n") | $rb |"
    done
    echo
    echo "runs (req/s, in order): $(for m in $MODES; do case $m in a200|a304) continue;; esac; printf '%s tidings [%s] nginx [%s]' "$m" "$(paste -sd' ' results/tidings-$m)" "$(paste -sd' ' results/nginx-$m)"; [ -n "$BASE_BIN" ] && printf ' base [%s]' "$(paste -sd' ' results/base-$m)"; printf '; '; done)"
    if [ -f results/tidings-off-a200 ] || [ -f results/tidings-off-a304 ]; then
        echo
        echo "Feed audience: wrk sends \`User-Agent: $FEEDLY_UA\`; counting on (the default) against nginx and against the same build with audience.enabled=false"
        echo
        echo "| measure | counting on | counting off | nginx | on / nginx | target | | on / off | target | |"
        echo "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | --- |"
        for mode in a200 a304; do
            [ -f results/tidings-off-$mode ] || continue
            t=$(med tidings-$mode); o=$(med tidings-off-$mode); n=$(med nginx-$mode)
            rn=$(ratio "$t" "$n"); ro=$(ratio "$t" "$o")
            case $mode in a200) label="Feedly GET 200 req/s";; a304) label="Feedly If-None-Match 304 req/s";; esac
            echo "| $label | $t | $o | $n | $rn | >= 1.00 | $(verdict "$rn" ">=" 1.0) | $ro | >= 0.95 | $(verdict "$ro" ">=" 0.95) |"
        done
        echo
        echo "The same runs as the servers' CPU time per request (µs, user + system, median): less"
        echo "sensitive than req/s to other work on the cores. The counting's cost is on / off - 1."
        echo
        echo "| measure | counting on | counting off | nginx | on / off | on / nginx |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        for mode in a200 a304; do
            [ -f results/tidings-off-$mode.cpu ] || continue
            t=$(med tidings-$mode.cpu); o=$(med tidings-off-$mode.cpu); n=$(med nginx-$mode.cpu)
            case $mode in a200) label="Feedly GET 200, µs/request";; a304) label="Feedly 304, µs/request";; esac
            echo "| $label | $t | $o | $n | $(ratio "$t" "$o") | $(ratio "$t" "$n") |"
        done
        echo
        echo "runs (req/s, in order): $(for m in a200 a304; do [ -f results/tidings-off-$m ] && printf '%s on [%s] off [%s] nginx [%s]; ' "$m" "$(paste -sd' ' results/tidings-$m)" "$(paste -sd' ' results/tidings-off-$m)" "$(paste -sd' ' results/nginx-$m)"; done)"
        echo
        echo "what the counting daemon recorded (tidings audience):"
        echo
        sed 's/^/    /' results/audience.txt
    fi
    fi
    echo
    echo "### Other figures"
    echo
    echo "| measure | value | target | |"
    echo "| --- | ---: | --- | --- |"
    if has_part big; then
    echo "| import of $ARTICLES articles / $TAGS tags ($BIG_JSON_MB MiB of JSON) | $IMPORT_MS ms ($(cat big-import.time)) | | |"
    echo "| database of that catalog before start ($([ -n "$PG_URL" ] && echo pg_database_size || echo 'SQLite files')) | $DB_MB MB | | |"
    echo "| its mirror: files (MB); written in full ... after \`listening\` | $MIRROR_FILES of $MIRROR_EXPECTED ($MIRROR_MB MB); $MIRROR_WAIT_MS ms | | |"
    echo "| VmRSS once the mirror is complete | $(mb "$BIG_RSS_MIRROR_KB") MB (feed cache $(cache_mb "$BIG_CACHE_MIRROR")) | | |"
    echo "| a cold tag feed (first request of each tag), p90 / max | $COLD_P90 / $COLD_MAX ms | | |"
    echo "| every tag feed request of the sweep ($ALL_N), p50 / p90; 404s; whole sweep | $ALL_MED / $ALL_P90 ms; $SWEEP_MISSING; $SWEEP_S s | | |"
    echo "| publish → visible, p90 / max | $PUB_P90 / $PUB_MAX ms | | |"
    echo "| POST answered, p90 | $POST_P90 ms | | |"
    echo "| daemon's re-render per publish (its log), median | $RENDER_MED ms for $RENDER_FEEDS feeds | | |"
    echo "| VmHWM (peak VmRSS) of the daemon on that catalog | $(mb "$BIG_HWM_KB") MB | | |"
    fi
    if has_part huge; then
    echo "| huge: import of $HUGE_ARTICLES articles / $HUGE_TAGS tags ($HUGE_JSON_MB MiB of JSON) into SQLite | $HUGE_IMPORT_MS ms ($(cat huge-import.time)) | | |"
    [ -n "$HUGE_MIGRATE_MS" ] && echo "| huge: \`tidings migrate\` of that into PostgreSQL | $HUGE_MIGRATE_MS ms | | |"
    echo "| huge: database size | $HUGE_DB_MB MB | | |"
    echo "| huge: 5 s after start, VmRSS (VmHWM); mirror files by then | $(mb "$HUGE_RSS5_KB") MB ($(mb "$HUGE_HWM_KB") MB); $HUGE_MIRROR_FILES | | |"
    fi
    if has_part idle; then
    echo "| idle VmRSS, sample catalog (3 s after start) | $(mb "$IDLE_RSS_KB") MB | <= 20 MB | $(verdict "$(mb "$IDLE_RSS_KB")" "<=" 20) |"
    echo "| startup, sample catalog | $IDLE_STARTUP_MS ms | | |"
    fi
    has_part serve && echo "| VmRSS after the serve runs | $(mb "$SERVE_RSS_KB") MB | | |"
    true
} >summary.md
echo
cat summary.md
[ -z "${BENCH_SUMMARY:-}" ] || cp summary.md "$BENCH_SUMMARY"
