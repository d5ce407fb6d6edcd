#!/usr/bin/env bash
# Benchmarks tidings on this machine, all on 127.0.0.1, in one run of about 6-9 minutes:
#   1. serving a real 50-item /feed.xml: tidings against nginx serving tidings' own static mirror
#      (plain 200, conditional 304, gzip 200), interleaved rounds of wrk, medians and ratios; and
#      the feed audience's cost: 200 and 304 with a Feedly User-Agent (modes a200, a304) against
#      nginx and against the same build with counting off (audience.enabled=false), same run;
#   2. a 100,000-article / 1,000-tag catalog: import rate, startup time, RSS, and publish latency
#      (POST through the admin API until the site feed and the tag feed both carry the article);
#   3. idle RSS with only the sample catalog.
# Usage: bash scripts/bench.sh            (results: summary table at the end; BENCHMARKS.md explains)
# Knobs (environment): BENCH_DURATION (s per wrk run, 10), BENCH_ROUNDS (5), BENCH_CONNECTIONS (64),
#   BENCH_THREADS (2), BENCH_ARTICLES (100000), BENCH_TAGS (1000), BENCH_PUBLISHES (50),
#   BENCH_PUBLISH_GAP (s between publishes, 0.2; 0 = back to back),
#   BENCH_GZIP (1: also run the gzip comparison), BENCH_AUDIENCE (1: also run the audience modes),
#   BENCH_MODES (the serve modes to run, default "200 304 gzip a200 a304" as the two above allow),
#   BENCH_SERVE_ONLY (1: part 1 alone, no big catalog or idle figures),
#   BENCH_BUILD (1: cargo build --release first),
#   BENCH_KEEP (1: keep the work folder), BENCH_SUMMARY (file to copy the summary table to),
#   BENCH_PERF (1: record `perf` call graphs of tidings during one 200 and one 304 run),
#   BENCH_PG_URL (a PostgreSQL URL whose user may create databases: each part then runs on a
#   fresh database bench_serve, bench_big, bench_idle of that server instead of a SQLite file).
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
SERVE_ONLY=${BENCH_SERVE_ONLY:-0}
# What a hosted reader sends; the audience modes send it to all three servers.
FEEDLY_UA='Feedly/1.0 (+http://www.feedly.com/fetcher.html; 134 subscribers; )'
TOKEN=bench-admin-token-0123456789abcdef
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tidings
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
if [ "${BENCH_BUILD:-1}" = 1 ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || die "no $BIN (run cargo build --release)"

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
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_tidings NAME VAR=value...: starts the daemon on a free port; sets T_PID, T_PORT, T_STARTUP_MS.
start_tidings() {
    local name=$1; shift
    local t0; t0=$(date +%s%N)
    env TIDINGS_SERVER_BIND=127.0.0.1:0 "$@" "$BIN" serve >"$name.out" 2>"$name.err" &
    T_PID=$!
    PIDS+=("$T_PID")
    while ! grep -q '^listening on ' "$name.out" 2>/dev/null; do
        kill -0 "$T_PID" 2>/dev/null || { cat "$name.err" >&2; die "tidings ($name) exited"; }
        [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 180 ] || die "tidings ($name) not listening after 180 s"
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# db_var NAME: the variable that gives part NAME its own new database
PG_URL=${BENCH_PG_URL:-}
db_var() {
    if [ -n "$PG_URL" ]; then
        psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS bench_$1" -c "CREATE DATABASE bench_$1" >/dev/null 2>&1 \
            || die "cannot create database bench_$1 on $PG_URL"
        python3 -c "import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print('TIDINGS_DATABASE_URL=' + u.urlunsplit(p._replace(path='/bench_' + sys.argv[2])))" "$PG_URL" "$1"
    else
        echo "TIDINGS_DATABASE_PATH=$WORK/$1/tidings.db"
    fi
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
header() { curl -fsS -o /dev/null -D - "${@:2}" | tr -d '\r' | awk -v h="$1" 'tolower($1)==tolower(h)":" {sub(/^[^:]*: */,""); print}'; }

# ---------------------------------------------------------------- 1. serve: tidings vs nginx
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE (anything else busy on these cores makes every figure noisier)"
log "serve: generating 200 articles (~3 KB HTML each) and importing them with the sample catalog"
python3 "$SCRIPTS/bench_catalog.py" serve-catalog.json --articles 200 --tags 12 --content-bytes 3000 --prefix serve
SERVE_ENV=("$(db_var serve)" TIDINGS_FEEDS_MIRROR_DIR="$WORK/serve/mirror"
           TIDINGS_CATALOG_LOAD_SAMPLE=true TIDINGS_FEEDS_ITEMS=50 RUST_LOG=warn)
env "${SERVE_ENV[@]}" "$BIN" import "$ROOT/data/sample-articles.json" >serve-import.out 2>&1 || { cat serve-import.out; die "import of the sample"; }
env "${SERVE_ENV[@]}" "$BIN" import serve-catalog.json >>serve-import.out 2>&1 || { cat serve-import.out; die "import of serve-catalog.json"; }
start_tidings serve "${SERVE_ENV[@]}"
TP=$T_PORT; TPID=$T_PID
TURL=http://127.0.0.1:$TP/feed.xml

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
{ echo "tidings:"; curl -sS -D - -o /dev/null "$TURL"; echo "nginx:"; curl -sS -D - -o /dev/null "$NURL"; } >results/headers.txt

# run_wrk SERVER MODE URL [wrk args...]: one run, its req/s appended to results/SERVER-MODE.
# cpu_ticks PID...: user + system time of these processes so far, in clock ticks.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo "$t"; }
# server_pids SERVER: the processes that do SERVER's work (nginx: the master and its workers).
server_pids() {
    case $1 in
    tidings) echo "$TPID" ;;
    tidings-off) echo "$OPID" ;;
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
log "serve: wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds, interleaved (modes: $MODES)"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        case $mode in
        200)  run_wrk tidings 200 "$TURL"; run_wrk nginx 200 "$NURL" ;;
        304)  run_wrk tidings 304 "$TURL" -H "If-None-Match: $T_ETAG"
              run_wrk nginx 304 "$NURL" -H "If-None-Match: $N_ETAG" ;;
        gzip) run_wrk tidings gzip "$TURL" -H 'Accept-Encoding: gzip'
              run_wrk nginx gzip "$NURL" -H 'Accept-Encoding: gzip' ;;
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
if [ "$AUDIENCE" = 1 ]; then
    # What the counting daemon wrote at its stop: the Feedly count, read back as an admin would.
    env "${SERVE_ENV[@]}" "$BIN" audience >results/audience.txt 2>&1 || { cat results/audience.txt; die "tidings audience"; }
    grep -q 'Feedly .*134 subscribers' results/audience.txt || { cat results/audience.txt; die "the Feedly count was not recorded"; }
fi
kill -QUIT "$NGINX_PID" 2>/dev/null || true
wait "$NGINX_PID" 2>/dev/null || true
NGINX_PID=

if [ "$SERVE_ONLY" != 1 ]; then
# ---------------------------------------------------------------- 2. a big catalog: import, startup, publish
log "publish: generating $ARTICLES articles over $TAGS tags"
python3 "$SCRIPTS/bench_catalog.py" big-catalog.json --articles "$ARTICLES" --tags "$TAGS" --content-bytes 500 --prefix big
BIG_ENV=("$(db_var big)" TIDINGS_FEEDS_MIRROR_DIR="$WORK/big/mirror"
         TIDINGS_CATALOG_LOAD_SAMPLE=false TIDINGS_FEEDS_ITEMS=50 TIDINGS_ADMIN_TOKEN="$TOKEN" RUST_LOG=info)
log "publish: importing big-catalog.json ($(( $(stat -c %s big-catalog.json) / 1048576 )) MiB) into a fresh database"
t0=$(date +%s%N)
/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB max RSS' -o big-import.time \
    env "${BIG_ENV[@]}" "$BIN" import big-catalog.json >big-import.out 2>&1 || { tail -5 big-import.out; die "import"; }
IMPORT_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
IMPORT_RATE=$(( ARTICLES * 1000 / (IMPORT_MS > 0 ? IMPORT_MS : 1) ))
log "publish: $(tail -1 big-import.out) in $IMPORT_MS ms ($IMPORT_RATE articles/s; $(cat big-import.time))"
# The mirror's folder, plus the database: its file on SQLite, pg_database_size on PostgreSQL.
DB_MB=$(( $( (du -sk big 2>/dev/null || echo 0) | cut -f1) / 1024 ))
if [ -n "$PG_URL" ]; then
    DB_MB=$(( DB_MB + $(psql -Atq "$PG_URL" -c "SELECT pg_database_size('bench_big')") / 1048576 ))
fi

start_tidings big "${BIG_ENV[@]}"
BPID=$T_PID; BP=$T_PORT; BIG_STARTUP_MS=$T_STARTUP_MS
BIG_RSS_KB=$(rss_kb "$BPID")
log "publish: listening after $BIG_STARTUP_MS ms, VmRSS $BIG_RSS_KB kB"
# Let the initial mirror of every feed drain before timing publishes (it is another thread's disk work).
prev=-1
for _ in $(seq 120); do
    n=$(find big/mirror -name '*.gz' 2>/dev/null | wc -l)
    [ "$n" -eq "$prev" ] && [ "$n" -gt 0 ] && break
    prev=$n
    sleep 1
done
MIRROR_FILES=$(find big/mirror -type f | wc -l)
BIG_RSS2_KB=$(rss_kb "$BPID")
log "publish: mirror holds $MIRROR_FILES files; VmRSS $BIG_RSS2_KB kB; posting $PUBLISHES articles"
python3 "$SCRIPTS/bench_publish.py" --port "$BP" --token "$TOKEN" --count "$PUBLISHES" --tags "$TAGS" --gap "$PUBLISH_GAP" >results/publish.txt \
    || die "publish benchmark"
pub() { awk -v k="$1" '$1==k {print $2}' results/publish.txt; }
PUB_MED=$(pub visible_median_ms); PUB_P90=$(pub visible_p90_ms); PUB_MAX=$(pub visible_max_ms)
POST_MED=$(pub post_median_ms); POST_P90=$(pub post_p90_ms)
BIG_RSS3_KB=$(rss_kb "$BPID"); BIG_HWM_KB=$(hwm_kb "$BPID")
log "publish: visible median $PUB_MED ms, p90 $PUB_P90 ms, max $PUB_MAX ms (POST answered: median $POST_MED, p90 $POST_P90 ms)"
# The daemon logs how long each re-render took ("feeds updated feeds=N ms=M"): the server-side share.
sed 's/\x1b\[[0-9;]*m//g' big.err | sed -n 's/.*feeds updated feeds=\([0-9]*\) ms=\([0-9]*\).*/\1 \2/p' >results/publish-render.txt || true
RENDER_MED=$(awk '{print $2}' results/publish-render.txt | median)
RENDER_FEEDS=$(awk '{print $1}' results/publish-render.txt | median)
stop_pid "$BPID"

# ---------------------------------------------------------------- 3. idle RSS, sample catalog only
log "idle: fresh database with the sample catalog"
start_tidings idle "$(db_var idle)" TIDINGS_FEEDS_MIRROR_DIR="$WORK/idle/mirror" \
    TIDINGS_CATALOG_LOAD_SAMPLE=true
IPID=$T_PID; IDLE_STARTUP_MS=$T_STARTUP_MS
curl -fsS -o /dev/null "http://127.0.0.1:$T_PORT/feed.xml"
sleep 3
IDLE_RSS_KB=$(rss_kb "$IPID")
stop_pid "$IPID"
fi

# ---------------------------------------------------------------- summary
med() { median <"results/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "MISSED"}'; }
{
    echo "## tidings benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)')"
    echo
    echo "load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "database: $([ -n "$PG_URL" ] && echo "PostgreSQL ($(psql -Atq "$PG_URL" -c 'SHOW server_version' 2>/dev/null))" || echo SQLite)"
    echo
    echo "/feed.xml: $ITEMS items, $FEED_BYTES bytes ($GZ_BYTES gzipped); wrk -t$THREADS -c$CONNS -d${DURATION}s, median of $ROUNDS interleaved rounds"
    echo
    echo "| measure | tidings | nginx | tidings / nginx | target | |"
    echo "| --- | ---: | ---: | ---: | --- | --- |"
    for mode in $MODES; do
        case $mode in a200|a304) continue;; esac
        t=$(med tidings-$mode); n=$(med nginx-$mode); r=$(ratio "$t" "$n")
        case $mode in 200) label="GET 200 req/s";; 304) label="If-None-Match 304 req/s";; gzip) label="gzip 200 req/s";; esac
        if [ $mode = gzip ]; then target="(none)"; v=""; else target=">= 0.90"; v=$(verdict "$r" ">=" 0.9); fi
        echo "| $label | $t | $n | $r | $target | $v |"
    done
    echo
    echo "runs (req/s, in order): $(for m in $MODES; do case $m in a200|a304) continue;; esac; printf '%s tidings [%s] nginx [%s]; ' "$m" "$(paste -sd' ' results/tidings-$m)" "$(paste -sd' ' results/nginx-$m)"; done)"
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
    if [ "$SERVE_ONLY" != 1 ]; then
    echo
    echo "| measure | value | target | |"
    echo "| --- | ---: | --- | --- |"
    echo "| import $ARTICLES articles / $TAGS tags | $IMPORT_MS ms ($IMPORT_RATE articles/s) | | |"
    echo "| startup on that catalog (exec to 'listening') | $BIG_STARTUP_MS ms | | |"
    echo "| VmRSS after start / after mirror / after $PUBLISHES publishes (peak) | $(mb "$BIG_RSS_KB") / $(mb "$BIG_RSS2_KB") / $(mb "$BIG_RSS3_KB") MB ($(mb "$BIG_HWM_KB")) | | |"
    echo "| publish → visible in /feed.xml and tag feed ($PUBLISHES posts, ${PUBLISH_GAP} s apart), median | $PUB_MED ms | <= 10 ms | $(verdict "$PUB_MED" "<=" 10) |"
    echo "| publish → visible, p90 / max | $PUB_P90 / $PUB_MAX ms | | |"
    echo "| POST answered, median / p90 | $POST_MED / $POST_P90 ms | | |"
    echo "| daemon's re-render per publish (its log), median | $RENDER_MED ms for $RENDER_FEEDS feeds | | |"
    echo "| idle VmRSS, sample catalog (3 s after start) | $(mb "$IDLE_RSS_KB") MB | <= 20 MB | $(verdict "$(mb "$IDLE_RSS_KB")" "<=" 20) |"
    echo "| startup, sample catalog | $IDLE_STARTUP_MS ms | | |"
    echo "| VmRSS after the serve runs | $(mb "$SERVE_RSS_KB") MB | | |"
    echo
    echo "database + mirror of the big catalog: $DB_MB MB before start; mirror files: $MIRROR_FILES"
    fi
} >summary.md
echo
cat summary.md
[ -n "${BENCH_SUMMARY:-}" ] && cp summary.md "$BENCH_SUMMARY"
