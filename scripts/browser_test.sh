#!/usr/bin/env bash
# Browser test of the subscriber pages: starts tidings on a free 127.0.0.1 port with the sample
# catalog and a file: mail outbox, then drives headless Chromium through them as a person would
# (scripts/browser/subscriber_flow.mjs, with playwright-core):
#   (a) /subscribe: type an email, tick two tags, pick Weekly and a time zone, submit, see "Check
#       your inbox"; the API shows the subscriber pending with those choices;
#   (b) open the confirmation email's link (text/plain part, decoded by scripts/browser/mail_links.py),
#       check that opening it changed nothing, click "Confirm subscription", see "You are subscribed";
#   (c) follow the page's link to the preferences, change tags, cadence and time zone, save, see
#       "Saved." and the new choices in the API;
#   (d) open the welcome email's unsubscribe link (opening changes nothing), click Unsubscribe, see
#       "You are unsubscribed" and status unsubscribed in the API;
#   (e) the subscribe form by keyboard alone: the label focuses the email field, Tab, Space, arrows,
#       type-ahead on the time zone select, Enter submits;
#   (f) /subscribe at a phone's width (390px): a screenshot, and nothing overflows horizontally;
#   (g) the time zone preselected from the browser's, and the default without JavaScript;
#   and on every page, every form control has a label; the browser talks only to the daemon.
# Then the console (scripts/browser/console_flow.mjs), with 10,000 subscribers imported and an
# owner and a viewer added by the CLI: sign in and see the dashboard's three charts; find one
# subscriber by part of the address, open their timeline and suppress them; edit an article and
# see it in /feed.xml; follow a blog (a static feed served by python3 -m http.server on
# 127.0.0.1, which the daemon is allowed to reach) and poll it now; a viewer refused every change
# (403, nothing changed); sign out, and the old cookie opens nothing; every console page at 390px.
# Screenshots of the dashboard, of a subscriber's page and of the Sources page are kept in
# target/browser-test/ (SCREENSHOTS overrides).
#
# Run from anywhere: bash scripts/browser_test.sh
# Needs Rust, Python 3, Node.js >= 20 with npm, and root (for apt-get) on Debian; installs chromium
# (apt) and playwright-core (npm, into scripts/browser/node_modules) when missing. Never downloads
# a browser of Playwright's own: it runs the system's /usr/bin/chromium (override: CHROMIUM).
# Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on any failure.
# KEEP_WORK=1 keeps the temporary folder (screenshot, outbox, daemon log).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
log() { echo "== $*"; }
finish() {
    if ((FAILED)) && [[ -s "${WORK:-}/stderr" ]]; then
        echo "--- last lines of the daemon's log"
        tail -n 20 "$WORK/stderr" || true
        echo "browser test: see FAIL lines above; KEEP_WORK=1 keeps the screenshot, outbox and log"
    fi
    [[ -z "${KEEP_WORK:-}" ]] || echo "work files kept in $WORK"
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-browser.XXXXXX")
DAEMON_PID=""
BLOG_PID=""
cleanup() {
    local status=$?
    [[ -z "$BLOG_PID" ]] || kill -TERM "$BLOG_PID" 2>/dev/null || true
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    # Chromium is node's child and goes with it; a leftover one would hold files in $WORK.
    [[ -z "${NODE_PID:-}" ]] || kill -TERM "$NODE_PID" 2>/dev/null || true
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
        echo "browser test: need $* but there is no apt-get; install it by hand" >&2
        return 1
    fi
    if [[ -z "$APT_UPDATED" ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$CHROMIUM" ]]; then
    log "installing chromium"
    apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm"
    apt_install nodejs npm
fi
BROWSER_DIR=$REPO/scripts/browser
if [[ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]]; then
    log "installing playwright-core (npm ci in scripts/browser)"
    # playwright-core has no install script and fetches no browser; --ignore-scripts keeps it so.
    (cd "$BROWSER_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

# ---- build ------------------------------------------------------------------------------------
log "building the daemon"
cargo build --quiet --bin tidings
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/tidings

# ---- daemon -----------------------------------------------------------------------------------
# The emails' links must lead back to this daemon, so site.base_url names its port: pick a free
# port first (and try another if something takes it before the daemon binds it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
TOKEN="browser-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# A blog that lives elsewhere, for the console's Sources page: a static RSS feed.
mkdir -p "$WORK/blog"
python3 - "$WORK/blog/feed.xml" <<'PY'
import sys
from email.utils import formatdate
import time
items = "".join(
    f"<item><guid isPermaLink=\"false\">elsewhere-{i}</guid>"
    f"<link>https://elsewhere.example/posts/{i}</link><title>Elsewhere, post {i}</title>"
    f"<description>Post {i}, the text.</description><pubDate>{formatdate(time.time() - 3600 * (i + 1), usegmt=True)}</pubDate></item>"
    for i in range(3)
)
with open(sys.argv[1], "w") as f:
    f.write('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Elsewhere</title>'
            f'<link>https://elsewhere.example/</link><description>A blog that lives elsewhere</description>{items}</channel></rss>\n')
PY
BLOG_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/blog" "$BLOG_PORT" \
    >"$WORK/blog.log" 2>&1 </dev/null &
BLOG_PID=$!
BLOG_FEED="http://127.0.0.1:$BLOG_PORT/feed.xml"
mkdir -p "$WORK/outbox" "$WORK/mirror" "$WORK/tmp"
: >"$WORK/tidings.toml" # an empty config file, so a developer's ./tidings.toml plays no part
BASE_URL=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    log "starting tidings on 127.0.0.1:$PORT (database, outbox and log in $WORK)"
    (
        cd "$WORK"
        TIDINGS_SERVER_BIND=127.0.0.1:$PORT \
            TIDINGS_SITE_BASE_URL=http://127.0.0.1:$PORT \
            TIDINGS_DATABASE_PATH="$WORK/tidings.db" \
            TIDINGS_FEEDS_MIRROR_DIR="$WORK/mirror" \
            TIDINGS_ADMIN_TOKEN="$TOKEN" \
            TIDINGS_CATALOG_LOAD_SAMPLE=true \
            TIDINGS_CATALOG_SAMPLE_PATH="$REPO/data/sample-articles.json" \
            TIDINGS_MAIL_TRANSPORT="file:$WORK/outbox" \
            TIDINGS_MAIL_TEMPLATES_DIR="$REPO/email_templates" \
            TIDINGS_SOURCES_ALLOW_PRIVATE=127.0.0.1 \
            exec "$BIN" --config "$WORK/tidings.toml" serve
    ) </dev/null >"$WORK/stdout" 2>"$WORK/stderr" &
    DAEMON_PID=$!
    for _ in $(seq 1 300); do
        if line=$(grep -m1 -o 'listening on http://[^[:space:]]*' "$WORK/stdout" 2>/dev/null); then
            BASE_URL=${line#listening on }
            break
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ -z "$BASE_URL" ]] || break
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    grep -qi 'address.*in use' "$WORK/stderr" || break
done
if [[ -z "$BASE_URL" ]]; then
    fail "daemon starts and prints 'listening on http://127.0.0.1:PORT'"
    echo "--- stdout"; cat "$WORK/stdout"; echo "--- stderr"; tail -n 40 "$WORK/stderr"
    finish
    exit 1
fi
if [[ "$BASE_URL" == "http://127.0.0.1:$PORT" ]]; then
    pass "daemon starts: $BASE_URL (pid $DAEMON_PID)"
else
    fail "daemon listens on $BASE_URL, not on http://127.0.0.1:$PORT as asked"
fi

# ---- the browser ------------------------------------------------------------------------------
log "headless Chromium ($("$CHROMIUM" --version 2>/dev/null | head -n1)) through the subscriber pages"
# TMPDIR: Playwright makes the browser's fresh profile there, so it goes with $WORK.
# Runs one flow (node scripts/browser/SCRIPT) with the NAME=VALUE pairs after it in its
# environment, and adds the PASS/FAIL counts it reports to this script's.
run_flow() {
    local script=$1 results="$WORK/results-$1" status
    shift
    set +e
    env TMPDIR="$WORK/tmp" BASE_URL="$BASE_URL" ADMIN_TOKEN="$TOKEN" RESULTS="$results" \
        CHROMIUM="$CHROMIUM" "$@" timeout 300 node "$BROWSER_DIR/$script" &
    NODE_PID=$!
    wait "$NODE_PID"
    status=$?
    NODE_PID=""
    set -e
    if [[ -s "$results" ]]; then
        read -r js_passed js_failed <"$results"
        PASSED=$((PASSED + js_passed))
        FAILED=$((FAILED + js_failed))
        ((status == 0)) || fail "scripts/browser/$script exits 0 (exit $status)"
    else
        fail "scripts/browser/$script reported its results (exit $status)"
    fi
}
run_flow subscriber_flow.mjs OUTBOX="$WORK/outbox" OUT_DIR="$WORK"

# ---- the console -------------------------------------------------------------------------------
log "the console: 10,000 subscribers, an owner and a viewer"
tidings_cli() {
    (cd "$WORK" && TIDINGS_DATABASE_PATH="$WORK/tidings.db" TIDINGS_SITE_BASE_URL="$BASE_URL" \
        TIDINGS_MAIL_TRANSPORT="file:$WORK/outbox" "$BIN" --config "$WORK/tidings.toml" "$@")
}
python3 - "$WORK/list.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("email,status\n")
    for i in range(10_000):
        f.write(f"reader{i:05}@example.org,confirmed\n")
PY
tidings_cli subscriber import "$WORK/list.csv" >/dev/null 2>"$WORK/import.log" \
    || fail "tidings subscriber import of 10,000 addresses"
OWNER_PASSWORD="owner-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
VIEWER_PASSWORD="viewer-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
echo "$OWNER_PASSWORD" | tidings_cli admin add olive --role owner 2>/dev/null || fail "tidings admin add olive"
echo "$VIEWER_PASSWORD" | tidings_cli admin add victor --role viewer 2>/dev/null || fail "tidings admin add victor"
SHOTS=${SCREENSHOTS:-$REPO/target/browser-test}
mkdir -p "$SHOTS"
run_flow console_flow.mjs OWNER="olive:$OWNER_PASSWORD" VIEWER="victor:$VIEWER_PASSWORD" \
    FIND="reader04217@example.org" BLOG_FEED="$BLOG_FEED" OUT_DIR="$SHOTS"
echo "screenshots of the console in $SHOTS"

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
    fi
else
    fail "daemon still running at the end of the checks"
fi

finish
