#!/usr/bin/env bash
# Feed conformance check: starts tidings on a free port with a fresh catalog (the sample articles
# plus edge cases added through the admin API), fetches every feed the index page's autodiscovery
# links name, and checks them the way validators and feed readers see them:
#   (a) every Atom feed validates against RFC 4287's RELAX NG grammar (jing, or xmllint), and every
#       Atom date carries a time zone;
#   (b) every RSS/Atom feed parses in Python feedparser with bozo == 0 and the expected number of
#       entries; JSON Feeds are checked against JSON Feed 1.1 (feedparser cannot read them);
#   (c) every feed parses with the feed-rs crate (examples/feedcheck.rs), with the expected count;
#   (d) If-None-Match with the ETag, and If-Modified-Since with the Last-Modified, get 304 and no body;
#   (e) Accept-Encoding: gzip gets gzip that decompresses to exactly the identity bytes, own ETag,
#       and Vary: Accept-Encoding;
#   (f) HEAD gets the same headers as GET and no body.
# (b), (d), (e), (f) and the Atom time zones are in scripts/conformance.py.
#
# Run from the repository root: bash scripts/conformance.sh
# Needs Rust, Python 3 and root (for apt-get) on Debian; installs jing, libxml2-utils and feedparser
# when missing. The Atom schema is RFC 4287's (Appendix B), in scripts/schemas (override:
# TIDINGS_SCHEMA_DIR), so the check runs wherever the repository is cloned.
# Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
log() { echo "== $*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-conformance.XXXXXX")
DAEMON_PID=""
cleanup() {
    local status=$?
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ------------------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=""
apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "conformance: need $* but there is no apt-get; install it by hand" >&2
        return 1
    fi
    if [[ -z "$APT_UPDATED" ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v jing >/dev/null || missing+=(jing)
command -v xmllint >/dev/null || missing+=(libxml2-utils)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}" || echo "conformance: could not install ${missing[*]}" >&2
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import feedparser' 2>/dev/null; then
    log "installing the pinned Python packages of scripts/requirements.txt"
    pip_args=(--quiet --disable-pip-version-check --no-deps -r "$REPO/scripts/requirements.txt")
    "$PYTHON" -m pip install "${pip_args[@]}" ||
        "$PYTHON" -m pip install "${pip_args[@]}" --break-system-packages
fi

SCHEMA_DIR=${TIDINGS_SCHEMA_DIR:-$REPO/scripts/schemas}
if [[ ! -f "$SCHEMA_DIR/atom.rnc" && ! -f "$SCHEMA_DIR/atom.rng" ]]; then
    echo "conformance: no atom.rnc or atom.rng in $SCHEMA_DIR (set TIDINGS_SCHEMA_DIR)" >&2
    exit 2
fi

# ---- build ------------------------------------------------------------------------------------
log "building the daemon and examples/feedcheck.rs"
cargo build --quiet --bin tidings --example feedcheck
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/tidings

# ---- daemon -----------------------------------------------------------------------------------
TOKEN="conformance-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
PUBLIC_BASE="https://feeds.conformance.example"
ITEMS=50
mkdir -p "$WORK/mirror" "$WORK/fetched"
: >"$WORK/tidings.toml" # an empty config file, so a developer's ./tidings.toml plays no part
log "starting tidings (database and mirror in $WORK)"
(
    cd "$WORK"
    TIDINGS_SERVER_BIND=127.0.0.1:0 \
        TIDINGS_DATABASE_PATH="$WORK/tidings.db" \
        TIDINGS_FEEDS_MIRROR_DIR="$WORK/mirror" \
        TIDINGS_FEEDS_ITEMS=$ITEMS \
        TIDINGS_ADMIN_TOKEN="$TOKEN" \
        TIDINGS_SITE_BASE_URL="$PUBLIC_BASE" \
        TIDINGS_CATALOG_LOAD_SAMPLE=true \
        TIDINGS_CATALOG_SAMPLE_PATH="$REPO/data/sample-articles.json" \
        exec "$BIN" --config "$WORK/tidings.toml" serve
) </dev/null >"$WORK/stdout" 2>"$WORK/stderr" &
DAEMON_PID=$!

BASE_URL=""
for _ in $(seq 1 300); do
    if line=$(grep -m1 -o 'listening on http://[^[:space:]]*' "$WORK/stdout" 2>/dev/null); then
        BASE_URL=${line#listening on }
        break
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$BASE_URL" ]]; then
    fail "daemon starts and prints 'listening on http://127.0.0.1:PORT'"
    echo "--- stdout"; cat "$WORK/stdout"; echo "--- stderr"; tail -n 40 "$WORK/stderr"
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
pass "daemon starts: $BASE_URL (pid $DAEMON_PID)"

# ---- (b) (d) (e) (f): HTTP and feed-reader checks in Python ----------------------------------
log "HTTP and feedparser checks (scripts/conformance.py)"
"$PYTHON" "$REPO/scripts/conformance.py" \
    --base-url "$BASE_URL" --public-base "$PUBLIC_BASE" --token "$TOKEN" --items "$ITEMS" \
    --out "$WORK/fetched" --manifest "$WORK/manifest" --results "$WORK/results" || true
if [[ -s "$WORK/results" ]]; then
    read -r py_passed py_failed <"$WORK/results"
    PASSED=$((PASSED + py_passed))
    FAILED=$((FAILED + py_failed))
else
    fail "scripts/conformance.py reported its results"
fi

mapfile -t MANIFEST < <(cat "$WORK/manifest" 2>/dev/null || true)
if ((${#MANIFEST[@]} == 0)); then
    fail "feeds were fetched for the schema and feed-rs checks"
fi

# ---- (a) Atom against RFC 4287's RELAX NG grammar ----------------------------------------------
# ATOM_VALIDATOR=xmllint forces the fallback route (default: jing when it and atom.rnc are there).
if [[ "${ATOM_VALIDATOR:-jing}" == jing ]] && command -v jing >/dev/null && [[ -f "$SCHEMA_DIR/atom.rnc" ]]; then
    validator="jing -c atom.rnc"
    validate() { jing -c "$SCHEMA_DIR/atom.rnc" "$1"; }
elif command -v xmllint >/dev/null && [[ -f "$SCHEMA_DIR/atom.rng" ]]; then
    validator="xmllint --relaxng atom.rng"
    validate() { xmllint --noout --relaxng "$SCHEMA_DIR/atom.rng" "$1"; }
else
    validator=""
    fail "no Atom validator: neither jing with atom.rnc nor xmllint with atom.rng"
fi
if [[ -n "$validator" ]]; then
    log "Atom feeds against RFC 4287 ($validator)"
    for row in "${MANIFEST[@]}"; do
        IFS=$'\t' read -r file kind _ <<<"$row"
        [[ "$kind" == atom ]] || continue
        name=$(basename "$file")
        if out=$(validate "$file" 2>&1); then
            pass "[$name] Atom validates ($validator)"
        else
            fail "[$name] Atom validates ($validator): $(head -c 2000 <<<"$out")"
        fi
    done
fi

# ---- (c) feed-rs --------------------------------------------------------------------------------
if ((${#MANIFEST[@]})); then
    log "every feed with the feed-rs crate (cargo run --example feedcheck)"
    files=()
    declare -A WANT=()
    for row in "${MANIFEST[@]}"; do
        IFS=$'\t' read -r file _ want <<<"$row"
        files+=("$file")
        WANT[$file]=$want
    done
    feedcheck_out=$(cargo run -q --example feedcheck -- "${files[@]}" 2>&1) || true
    for file in "${files[@]}"; do
        name=$(basename "$file")
        line=$(grep -F -m1 -e "ok $file " -e "error $file:" <<<"$feedcheck_out" || true)
        if [[ "$line" == "ok $file "* ]]; then
            read -r _ _ kind count _ <<<"$line"
            if [[ "$count" == "${WANT[$file]}" ]]; then
                pass "[$name] feed-rs: $kind, $count entries"
            else
                fail "[$name] feed-rs: $kind, $count entries, want ${WANT[$file]}"
            fi
        elif [[ -n "$line" ]]; then
            fail "[$name] feed-rs: ${line#error "$file": }"
        else
            fail "[$name] feed-rs: no result; feedcheck said: $(head -c 1000 <<<"$feedcheck_out")"
        fi
    done
fi

# ---- the daemon stops cleanly ------------------------------------------------------------------
if kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID"
    status=0
    wait "$DAEMON_PID" || status=$?
    DAEMON_PID=""
    if ((status == 0)); then
        pass "daemon exits 0 on SIGTERM"
    else
        fail "daemon exits 0 on SIGTERM (exit $status)"
        tail -n 20 "$WORK/stderr"
    fi
else
    fail "daemon still running at the end of the checks"
    tail -n 40 "$WORK/stderr"
fi

if ((FAILED)); then
    echo "--- last lines of the daemon's log"
    tail -n 20 "$WORK/stderr" || true
    echo "conformance: see FAIL lines above; KEEP_WORK=1 keeps the fetched feeds and the log"
fi
[[ -z "${KEEP_WORK:-}" ]] || echo "work files kept in $WORK"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
