#!/usr/bin/env bash
# API conformance: Schemathesis (`st`, pinned in scripts/requirements.txt) runs every operation
# of the OpenAPI document the daemon serves (/api/openapi.json) against that daemon, with data in
# it (the six sample articles and a few more, confirmed and pending subscribers, suppressions, a
# finished digest run) and
# an owner API token, and checks each answer against the document:
#   not_a_server_error            no 5xx
#   status_code_conformance       the status is one the operation documents
#   content_type_conformance      so is the Content-Type
#   response_headers_conformance  documented headers are there and match their schema
#   response_schema_conformance   the body matches its schema
#   negative_data_rejection       input the document calls invalid is refused (4xx)
#   positive_data_acceptance      input the document calls valid is not refused with 400
#   unsupported_method            a method a path does not take gets 405 with an Allow header
#   ignored_auth                  a missing or wrong token is refused (401), never ignored
# Fixed seed, at most 25 examples per operation, a 10-minute budget (`timeout`: st's own
# --max-time would keep fuzzing until the budget is spent, every run).
#
# /webhooks/* is excluded: a provider webhook is authenticated by the provider's own signature
# (SNS certificates, HMAC, ECDSA, HTTP Basic), which Schemathesis cannot make, so every valid
# request it could generate is refused with 401 and "valid input is accepted" cannot hold. The
# document still describes them; tests/api/webhooks.rs signs real requests.
# /websub/* likewise: a hub's push is signed with a secret only the hub has, and its
# verification is answered only for what tidings asked; tests/api/sources_websub.rs plays a hub.
#
# The webhook-endpoint routes: the daemon allows private addresses
# (`webhook_endpoints.allow_private`) and holds one endpoint (id 1, http://127.0.0.1:9/, a port
# nothing listens on), so the {id} routes have one to act on. An endpoint URL whose host does not
# resolve within 2 s is refused with 400 naming `url`; the URLs Schemathesis generates have random
# hosts, so scripts/schemathesis.toml lets POST/PATCH answer that 400 to schema-valid input.
#
# Run from the repository root: bash scripts/api_conformance.sh
# Needs Rust and Python 3 (the venv of .ci/run, or `pip install --no-deps -r
# scripts/requirements.txt` into one; PYTHON names its python). Uses target/debug/tidings
# (TIDINGS_BIN overrides, e.g. target/release/tidings). Exits non-zero on any failure; its last
# line is "N passed, M failed".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
SEED=${API_CONFORMANCE_SEED:-26}
BUDGET_SECONDS=600
MAX_EXAMPLES=25
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance,unsupported_method,ignored_auth

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-api-conformance.XXXXXX")
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
log() { echo "== $*"; }

# ---- tools ------------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
ST="$(dirname "$(command -v "$PYTHON")")/st"
if [[ ! -x "$ST" ]]; then
    log "installing the pinned Python packages of scripts/requirements.txt into $WORK/venv"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        -r "$REPO/scripts/requirements.txt"
    ST="$WORK/venv/bin/st"
fi
"$ST" --version

BIN=${TIDINGS_BIN:-}
if [[ -z "$BIN" ]]; then
    cargo build --quiet --bin tidings
    BIN="$REPO/target/debug/tidings"
fi

# ---- a daemon with data in it -------------------------------------------------------------------
export TIDINGS_DATABASE_PATH="$WORK/tidings.db"
export TIDINGS_FEEDS_MIRROR_DIR="$WORK/mirror"
export TIDINGS_MAIL_TRANSPORT="file:$WORK/outbox"
export TIDINGS_SITE_BASE_URL="https://blog.example"
export TIDINGS_SERVER_BIND="127.0.0.1:0"
export TIDINGS_CATALOG_LOAD_SAMPLE=true
# Endpoints on 127.0.0.1 (the one added below); see the note above.
export TIDINGS_WEBHOOK_ENDPOINTS_ALLOW_PRIVATE=true
# A followed feed on a closed local port (id 1), for the /api/sources/{id} routes.
export TIDINGS_SOURCES_ALLOW_PRIVATE=127.0.0.1
unset TIDINGS_ADMIN_TOKEN
cd "$WORK"
mkdir -p outbox

TOKEN=$("$BIN" token add conformance --role owner | tail -n 1 | awk '{print $NF}')
[[ -n "$TOKEN" ]] || { echo "api_conformance: no token from tidings token add" >&2; exit 1; }

for i in 1 2 3; do
    "$BIN" article add --title "Conformance $i" --url "https://blog.example/conformance-$i" \
        --tag "Open Science" --tag AI --published "2026-05-2${i}T09:00:00Z" >/dev/null
done
for i in $(seq 1 12); do
    "$BIN" subscriber add "reader$i@example.org" --tag ai --confirmed >/dev/null
done
"$BIN" subscriber add "pending@example.org" >/dev/null
"$BIN" suppression add "gone@example.org" --reason hard_bounce >/dev/null
"$BIN" suppression add "spam@example.net" --reason complaint >/dev/null
# A webhook endpoint (id 1) for the /api/webhook-endpoints/{id} routes.
"$BIN" webhook-endpoint add http://127.0.0.1:9/conformance --event article.published >/dev/null
"$BIN" source add http://127.0.0.1:9/conformance.xml --name conformance >/dev/null
# A finished run (digests to the file outbox), so /api/digests/runs/{id} has one to show (run 1):
# an article published after the readers subscribed, so that they have something new.
"$BIN" article add --title "Conformance new" --url "https://blog.example/conformance-new" --tag AI >/dev/null
"$BIN" digest run --now >"$WORK/digest-run.out" 2>"$WORK/digest-run.log" \
    || { echo "api_conformance: tidings digest run failed" >&2; cat "$WORK/digest-run.log" >&2; exit 1; }
grep -q ' [1-9][0-9]* sent' "$WORK/digest-run.out" \
    || { echo "api_conformance: the digest run sent nothing, so there is no run 1" >&2; cat "$WORK/digest-run.out" >&2; exit 1; }

"$BIN" serve >"$WORK/stdout" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 1 200); do
    grep -q '^listening on ' "$WORK/stdout" 2>/dev/null && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
    sleep 0.05
done
BASE=$(sed -n 's/^listening on //p' "$WORK/stdout" | head -n 1)
[[ -n "$BASE" ]] || { echo "api_conformance: the daemon did not start" >&2; cat "$WORK/daemon.log" >&2; exit 1; }
log "daemon at $BASE"

# ---- the run ------------------------------------------------------------------------------------
log "st run $BASE/api/openapi.json (seed $SEED, $MAX_EXAMPLES examples per operation, ${BUDGET_SECONDS}s budget)"
status=0
timeout --signal=INT --kill-after=10 "$BUDGET_SECONDS" \
    "$ST" --config-file "$REPO/scripts/schemathesis.toml" run "$BASE/api/openapi.json" \
    --checks "$CHECKS" \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --exclude-path-regex '^/(webhooks|websub)/' \
    --header "Authorization: Bearer $TOKEN" \
    --workers 1 \
    --request-timeout 30 \
    --generation-database none \
    --no-color \
    --report junit --report-dir "$WORK/report" \
    || status=$?
if ((status == 124 || status == 130)); then
    echo "api_conformance: the run went past its ${BUDGET_SECONDS}s budget"
fi
if ((status != 0)); then
    echo "--- the daemon's log (last 40 lines)"
    tail -n 40 "$WORK/daemon.log"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "1 passed, 0 failed"
