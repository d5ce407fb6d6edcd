#!/usr/bin/env bash
# Mail conformance check: for one RSA and one Ed25519 DKIM key made by `tidings dkim keygen`, starts
# an SMTP sink (tests/support/smtp_sink.py) and a daemon signing with that key, all on 127.0.0.1,
# drives subscribe -> confirm over HTTP so a confirmation and a welcome email arrive, and checks
# every message the way mailbox providers see it (scripts/mail_conformance.py):
#   (1) multipart/alternative with exactly text/plain then text/html, both utf-8 and decodable;
#   (2) RFC 8058: one List-Unsubscribe with an <https://...> URI (and a <mailto:...> one when
#       mail.unsubscribe_mailto is set), and
#       List-Unsubscribe-Post exactly "List-Unsubscribe=One-Click";
#   (3) From, Date, Message-ID (<...@domain>, unique across all messages), List-Id; the non-ASCII
#       subject (site title "Zukunft & Technik — Blog ✓") decodes from RFC 2047 to the expected text;
#   (4) the DKIM signature verifies with dkimpy against the keygen's TXT record (no real DNS), and
#       h= covers from, to, subject, date, message-id, list-id, list-unsubscribe(-post);
#   (5) a tampered Subject fails verification;
# then one-click unsubscribes through the List-Unsubscribe URI and checks the admin API.
#
# Run from the repository root: bash scripts/mail_conformance.sh
# Needs Rust and Python 3; installs aiosmtpd, dkimpy and pynacl (Ed25519 for dkimpy) with pip when
# missing (pinned, scripts/requirements.txt). Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on any
# failure. KEEP_WORK=1 keeps the keys, the messages and the logs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
log() { echo "== $*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tidings-mail-conformance.XXXXXX")
DAEMON_PID=""
SINK_PID=""
# Stops one process we started: TERM, up to 5 s, then KILL.
stop() {
    local pid=$1
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    stop "$DAEMON_PID"
    stop "$SINK_PID"
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ------------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import aiosmtpd, dkim, nacl" 2>/dev/null; then
    log "installing the pinned Python packages of scripts/requirements.txt"
    pip_args=(--quiet --disable-pip-version-check --no-deps -r "$REPO/scripts/requirements.txt")
    "$PYTHON" -m pip install "${pip_args[@]}" ||
        "$PYTHON" -m pip install "${pip_args[@]}" --break-system-packages
fi

# ---- build and keys ---------------------------------------------------------------------------
log "building the daemon"
if ! cargo build --quiet --bin tidings; then
    fail "cargo build --bin tidings"
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/tidings
: >"$WORK/tidings.toml" # an empty config file, so a developer's ./tidings.toml plays no part

DOMAIN=example.com
FROM_ADDRESS=news@$DOMAIN
TOKEN="mail-conformance-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
PUBLIC_BASE="https://blog.mail-conformance.example"
TITLE="Zukunft & Technik — Blog ✓"
CONFIRM_SUBJECT_TEMPLATE="Confirm your subscription to {{ site }}"
WELCOME_SUBJECT_TEMPLATE="Willkommen bei {{ site }} – schön, dass Sie dabei sind: Ihre Auswahl für Künstliche Intelligenz"

for alg in rsa ed25519; do
    if (cd "$WORK" && "$BIN" --config "$WORK/tidings.toml" dkim keygen --algorithm "$alg" \
        --out "$WORK/$alg.pem" --selector "conformance-$alg" --domain "$DOMAIN") \
        </dev/null >"$WORK/keygen-$alg.out" 2>"$WORK/keygen-$alg.err"; then
        pass "[$alg] tidings dkim keygen writes $alg.pem"
    else
        fail "[$alg] tidings dkim keygen: $(head -c 1000 "$WORK/keygen-$alg.err")"
    fi
done

# ---- one run per key --------------------------------------------------------------------------
# Starts the sink; sets SINK_PORT, or returns 1.
start_sink() {
    local dir=$1
    mkdir -p "$dir/outbox"
    "$PYTHON" "$REPO/tests/support/smtp_sink.py" "$dir/outbox" </dev/null \
        >"$dir/sink.out" 2>"$dir/sink.err" &
    SINK_PID=$!
    SINK_PORT=""
    for _ in $(seq 1 300); do
        if line=$(grep -m1 -o '^listening [0-9]*' "$dir/sink.out" 2>/dev/null); then
            SINK_PORT=${line#listening }
            return 0
        fi
        kill -0 "$SINK_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# Starts the daemon; sets BASE_URL, or returns 1.
start_daemon() {
    local dir=$1 alg=$2 mailto=$3
    mkdir -p "$dir/mirror"
    (
        cd "$dir"
        TIDINGS_SERVER_BIND=127.0.0.1:0 \
            TIDINGS_DATABASE_PATH="$dir/tidings.db" \
            TIDINGS_FEEDS_MIRROR_DIR="$dir/mirror" \
            TIDINGS_ADMIN_TOKEN="$TOKEN" \
            TIDINGS_SITE_BASE_URL="$PUBLIC_BASE" \
            TIDINGS_SITE_TITLE="$TITLE" \
            TIDINGS_CATALOG_LOAD_SAMPLE=true \
            TIDINGS_CATALOG_SAMPLE_PATH="$REPO/data/sample-articles.json" \
            TIDINGS_MAIL_TRANSPORT="smtp://127.0.0.1:$SINK_PORT" \
            TIDINGS_MAIL_TLS=none \
            TIDINGS_MAIL_FROM="Blog <$FROM_ADDRESS>" \
            TIDINGS_MAIL_CONFIRM_SUBJECT="$CONFIRM_SUBJECT_TEMPLATE" \
            TIDINGS_MAIL_WELCOME_SUBJECT="$WELCOME_SUBJECT_TEMPLATE" \
            TIDINGS_MAIL_DKIM_SELECTOR="conformance-$alg" \
            TIDINGS_MAIL_DKIM_DOMAIN="$DOMAIN" \
            TIDINGS_MAIL_DKIM_PRIVATE_KEY="$WORK/$alg.pem" \
            TIDINGS_MAIL_UNSUBSCRIBE_MAILTO="$mailto" \
            exec "$BIN" --config "$WORK/tidings.toml" serve
    ) </dev/null >"$dir/stdout" 2>"$dir/stderr" &
    DAEMON_PID=$!
    BASE_URL=""
    for _ in $(seq 1 300); do
        if line=$(grep -m1 -o 'listening on http://[^[:space:]]*' "$dir/stdout" 2>/dev/null); then
            BASE_URL=${line#listening on }
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

: >"$WORK/message-ids"
for alg in rsa ed25519; do
    [[ -f "$WORK/$alg.pem" ]] || continue
    # A mailto: is advertised only when someone reads it: the RSA run names no address (the
    # https link alone), the Ed25519 run sets mail.unsubscribe_mailto.
    mailto=""
    [[ $alg == ed25519 ]] && mailto="unsubscribe@$DOMAIN"
    dir=$WORK/run-$alg
    mkdir -p "$dir"
    log "[$alg] SMTP sink and daemon (work files in $dir)"
    if ! start_sink "$dir"; then
        fail "[$alg] SMTP sink starts and prints 'listening PORT'"
        tail -n 20 "$dir/sink.err" || true
        stop "$SINK_PID"; SINK_PID=""
        continue
    fi
    if ! start_daemon "$dir" "$alg" "$mailto"; then
        fail "[$alg] daemon starts and prints 'listening on http://127.0.0.1:PORT'"
        echo "--- stdout"; cat "$dir/stdout"; echo "--- stderr"; tail -n 40 "$dir/stderr"
        stop "$DAEMON_PID"; DAEMON_PID=""
        stop "$SINK_PID"; SINK_PID=""
        continue
    fi
    pass "[$alg] SMTP sink on 127.0.0.1:$SINK_PORT, daemon on $BASE_URL"

    "$PYTHON" "$REPO/scripts/mail_conformance.py" \
        --label "$alg" --base-url "$BASE_URL" --public-base "$PUBLIC_BASE" --token "$TOKEN" \
        --outbox "$dir/outbox" --keygen-output "$WORK/keygen-$alg.out" --key "$WORK/$alg.pem" \
        --algorithm "$alg" --selector "conformance-$alg" --domain "$DOMAIN" \
        --email "reader.$alg@mail-conformance.example" --from-address "$FROM_ADDRESS" \
        --title "$TITLE" --confirm-subject "$CONFIRM_SUBJECT_TEMPLATE" \
        --welcome-subject "$WELCOME_SUBJECT_TEMPLATE" --mailto "$mailto" \
        --message-ids "$WORK/message-ids" --results "$dir/results" || true
    if [[ -s "$dir/results" ]]; then
        read -r py_passed py_failed <"$dir/results"
        PASSED=$((PASSED + py_passed))
        FAILED=$((FAILED + py_failed))
    else
        fail "[$alg] scripts/mail_conformance.py reported its results"
    fi

    stop "$DAEMON_PID"; DAEMON_PID=""
    stop "$SINK_PID"; SINK_PID=""
    if grep -q 'ERROR' "$dir/stderr"; then
        echo "    daemon errors:"; grep 'ERROR' "$dir/stderr" | tail -n 10 | sed 's/^/      /'
    fi
done

# ---- Message-IDs unique across every message of both runs --------------------------------------
total=$(grep -c . "$WORK/message-ids" || true)
dups=$(sort "$WORK/message-ids" | uniq -d | head -n 5 | tr '\n' ' ')
if ((total >= 4)) && [[ -z "$dups" ]]; then
    pass "Message-ID unique across all $total messages"
else
    fail "Message-ID unique across all messages ($total seen; repeated: ${dups:-none})"
fi

if ((FAILED)); then
    echo "mail conformance: see FAIL lines above; KEEP_WORK=1 keeps the keys, messages and logs"
fi
[[ -z "${KEEP_WORK:-}" ]] || echo "work files kept in $WORK"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
