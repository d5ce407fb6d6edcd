#!/usr/bin/env bash
# Followed blogs at scale: one full round of polls of 10,000 sources spread over 100 loopback
# addresses (127.0.0.2-101, served by nginx, 90% answering 304), and the time from a WebSub push
# to the entry in /feed.xml. Prints each figure against its target. Everything on 127.0.0.x.
#
#   bash scripts/bench_sources.sh
#
# Environment: BENCH_BIN (the tidings binary; default: cargo build --release, then
# $CARGO_TARGET_DIR or target/, release/tidings), BENCH_SOURCES (10000), BENCH_HOSTS (100),
# BENCH_CHANGED (0.1: the share of feeds with a new entry in the measured round), BENCH_PUSHES
# (30), BENCH_KEEP (1: keep the work folder), BENCH_SUMMARY (a file to copy the summary to).
# Needs nginx (nginx-light) and Python 3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench_sources: $*" >&2; exit 1; }
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq nginx-light >/dev/null || die "cannot install nginx-light"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
BIN=${BENCH_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin tidings
    BIN="${CARGO_TARGET_DIR:-target}/release/tidings"
fi
[ -x "$BIN" ] || die "no binary at $BIN"
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /tmp/tidings-bench-sources.XXXXXX)
cleanup() { [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT

SOURCES=${BENCH_SOURCES:-10000}
echo "== $SOURCES sources over ${BENCH_HOSTS:-100} addresses; tidings: $BIN; load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 scripts/bench_sources.py --bin "$BIN" --nginx "$NGINX" --work "$WORK" \
    --sources "$SOURCES" --hosts "${BENCH_HOSTS:-100}" --changed "${BENCH_CHANGED:-0.1}" \
    --pushes "${BENCH_PUSHES:-30}" | tee "$WORK/figures.txt"

get() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/figures.txt"; }
verdict() { python3 -c "import sys; print('met' if float(sys.argv[1]) $2 float(sys.argv[3]) else 'MISSED')" "$1" "$2" "$3"; }
{
    echo
    echo "### Followed blogs: $SOURCES sources, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
    echo
    echo "| figure | value | target | |"
    echo "| --- | ---: | --- | --- |"
    echo "| one full round of polls ($(get round_304) answered 304, $(get round_200) 200, $(get round_other) other), from exec | $(get round_from_exec_s) s | <= 60 s | $(verdict "$(get round_from_exec_s)" '<=' 60) |"
    echo "| the same round, first fetch to last | $(get round_fetches_s) s | | |"
    echo "| tidings' peak RSS (VmHWM) over that round | $(get round_vmhwm_mb) MB | <= 96 MB | $(verdict "$(get round_vmhwm_mb)" '<=' 96) |"
    echo "| WebSub push to the entry in /feed.xml, p50 ($(get pushes) pushes) | $(get push_p50_ms) ms | <= 500 ms | $(verdict "$(get push_p50_ms)" '<=' 500) |"
    echo "| push to /feed.xml, p90 / max | $(get push_p90_ms) / $(get push_max_ms) ms | | |"
    echo "| the first round (every feed read, $(get first_round_articles) articles added): adding through the API / to the last fetch | $(get first_round_adding_s) / $(get first_round_s) s | | |"
    echo "| peak RSS over the first round | $(get first_round_vmhwm_mb) MB | | |"
} | tee "$WORK/summary.md"
[ -n "${BENCH_SUMMARY:-}" ] && cp "$WORK/summary.md" "$BENCH_SUMMARY"
exit 0
