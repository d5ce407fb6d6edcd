#!/usr/bin/env python3
"""Mail conformance checks for one DKIM key, against a running tidings daemon and SMTP sink.

Called by scripts/mail_conformance.sh once per key (RSA, Ed25519). Drives subscribe -> confirm over
HTTP so a confirmation and a welcome email arrive in the sink's folder, then parses every message
with Python's `email` package (policy=email.policy.default) and checks:
  (1) MIME: top-level multipart/alternative with exactly text/plain then text/html, both
      charset utf-8 and decodable, and no parse defects;
  (2) RFC 8058: one List-Unsubscribe header with exactly an HTTPS URI under the site's base URL and
      a mailto: URI when --mailto names the address, and List-Unsubscribe-Post exactly
      "List-Unsubscribe=One-Click";
  (3) From, To, Date, Message-ID (<local@domain>, unique), List-Id; the RFC 2047 subject decodes to
      the expected text;
  (4) DKIM verifies with dkimpy against the TXT record `tidings dkim keygen` printed (no real DNS),
      with the expected a=, d=, s=, c=, and h= covering the headers that matter;
  (5) a copy with a tampered Subject fails verification (so check (4) can fail).
As a control, a copy re-signed by dkimpy with the same private key must verify against the same
record: that separates "the record or the harness is wrong" from "tidings' signature is wrong".
Finally it POSTs the one-click unsubscribe URL (RFC 8058) and checks the admin API says
"unsubscribed".

Prints PASS/FAIL per check; writes "PASSED FAILED" to --results and each Message-ID to
--message-ids (one a line) for the caller's cross-run uniqueness check.
"""
import argparse
import base64
import email
import email.policy
import glob
import hashlib
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import dkim
from dkim.canonicalization import Relaxed
from dkim.util import parse_tag_value

PASSED = 0
FAILED = 0
SHOWN_HEADERS = []  # the header block of a message failing DKIM is printed once per run
# Headers the signature's h= must cover (RFC 8058 section 4 needs the two List-Unsubscribe ones).
MUST_SIGN = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
]


def check(ok, name, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
    else:
        FAILED += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def indent(text, prefix="    "):
    return "\n".join(prefix + line for line in text.splitlines())


# ---- HTTP ----------------------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, url, data=None, headers=None):
    """(status, headers, body bytes); HTTP errors are answers too, not exceptions."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def local_url(base_url, public_base, public_url):
    """The daemon's own address for a link that names the public base URL."""
    if not public_url.startswith(public_base.rstrip("/") + "/"):
        return None
    return base_url.rstrip("/") + public_url[len(public_base.rstrip("/")) :]


def wait_for_messages(outbox, seen, count, timeout=30.0):
    """Waits until `count` new .eml files are in `outbox`; returns their paths, oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        new = sorted(p for p in glob.glob(os.path.join(outbox, "*.eml")) if p not in seen)
        if len(new) >= count or time.monotonic() > deadline:
            return new
        time.sleep(0.1)


# ---- DKIM ----------------------------------------------------------------------------------------


def parse_record(keygen_stdout):
    """(name, value) of the zone-file line `tidings dkim keygen` prints."""
    m = re.search(r'^(\S+)\s+IN\s+TXT\s+\(\s*((?:"[^"]*"\s*)+)\)', keygen_stdout, re.M)
    if not m:
        return None, None
    return m.group(1), "".join(re.findall(r'"([^"]*)"', m.group(2)))


def make_dnsfunc(record_name, record_value, asked):
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        asked.append(name)
        if name.lower() == record_name.lower():
            return record_value.encode("ascii")
        return None

    return dnsfunc


def verify(raw, dnsfunc):
    """(verified, log lines) from dkimpy."""
    lines = []

    class ListHandler(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger(f"dkim-check-{id(lines)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(ListHandler())
    try:
        ok = bool(dkim.verify(raw, logger=logger, dnsfunc=dnsfunc))
    except Exception as e:  # dkimpy raises for some malformed input despite its contract
        lines.append(f"{type(e).__name__}: {e}")
        ok = False
    return ok, [l for l in lines if not l.startswith("sig: ")]


def signature_tags(raw):
    headers, _ = dkim.rfc822_parse(raw)
    for name, value in headers:
        if name.lower() == b"dkim-signature":
            return parse_tag_value(value), (name, value), headers
    return None, None, headers


def signature_holds(data, sig_b, algorithm, p):
    """Whether `sig_b` signs the canonical header `data` under public key `p` (raw bytes)."""
    try:
        if algorithm == "ed25519":
            import nacl.signing

            nacl.signing.VerifyKey(p).verify(hashlib.sha256(data).digest(), sig_b)
            return True
        pk = dkim.crypto.parse_public_key(p)
        return dkim.crypto.RSASSA_PKCS1_v1_5_verify(hashlib.sha256(data), sig_b, pk)
    except Exception:
        return False


def signed_header_data(headers, names, sigheader):
    """The byte string a relaxed/relaxed DKIM signature over `names` signs (RFC 6376 3.7)."""
    chosen = dkim.select_headers(headers, names)
    sig = Relaxed.canonicalize_headers([(sigheader[0], dkim.RE_BTAG.sub(b"\\1", sigheader[1]))])
    out = b""
    for n, v in Relaxed.canonicalize_headers(chosen) + [(x, y.rstrip()) for x, y in sig]:
        out += n + b":" + v
    return out


def diagnose(raw, record_value, algorithm):
    """Why tidings' signature does not verify: body hash, and which signed header spoils it."""
    tags, sigheader, headers = signature_tags(raw)
    if tags is None:
        return ["no DKIM-Signature header"]
    notes = []
    _, body = dkim.rfc822_parse(raw)
    bh = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    bh_tag = re.sub(rb"\s", b"", tags.get(b"bh", b""))
    notes.append("body hash bh= " + ("matches" if bh == bh_tag else f"differs (computed {bh.decode()})"))
    rec = parse_tag_value(record_value.encode())
    p = base64.b64decode(rec.get(b"p", b""))
    sig_b = base64.b64decode(re.sub(rb"\s", b"", tags.get(b"b", b"")))
    names = [n.strip().lower() for n in tags.get(b"h", b"").split(b":") if n.strip()]
    present = {n.lower() for n, _ in headers}
    absent = [n.decode() for n in names if n not in present]
    if absent:
        notes.append("h= names headers the message lacks: " + ", ".join(absent))
    if signature_holds(signed_header_data(headers, names, sigheader), sig_b, algorithm, p):
        notes.append("the header signature holds over h= as listed (so the failure is elsewhere)")
        return notes
    culprits = [
        n.decode()
        for n in names
        if signature_holds(
            signed_header_data(headers, [m for m in names if m != n], sigheader), sig_b, algorithm, p
        )
    ]
    if culprits:
        notes.append(
            "b= verifies only if the message's "
            + ", ".join(culprits)
            + " header is left out of the signed data, although h= lists it and the message has "
            "it: the signer hashed a header set without it"
        )
    else:
        notes.append("b= does not verify over h= even with any one header left out")
    return notes


def control_copy(raw, key_pem, algorithm, selector, domain, names):
    """The message with tidings' signature replaced by one dkimpy makes with the same key."""
    stripped = re.sub(
        rb"^DKIM-Signature:.*?\r?\n(?![ \t])", b"", raw, count=1, flags=re.S | re.M | re.I
    )
    if algorithm == "ed25519":
        der = base64.b64decode(b"".join(l for l in key_pem.splitlines() if not l.startswith(b"-----")))
        # PKCS#8 (RFC 8410): privateKey is OCTET STRING { OCTET STRING (32-byte seed) }; a v2 key
        # carries the public key after it, so find the seed by its wrapping, not at the end.
        at = der.find(b"\x04\x22\x04\x20")
        if at < 0:
            raise ValueError("no Ed25519 seed in the PKCS#8 key")
        privkey = base64.b64encode(der[at + 4 : at + 36])
        sig_alg = b"ed25519-sha256"
    else:
        privkey = key_pem
        sig_alg = b"rsa-sha256"
    header = dkim.sign(
        stripped,
        selector.encode(),
        domain.encode(),
        privkey,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=sig_alg,
        include_headers=names,
    )
    return header + stripped


def tamper_subject(raw):
    """The same bytes with one character of the Subject changed."""
    return re.sub(rb"^(Subject:[ \t]*)(\S)", lambda m: m.group(1) + (b"X" if m.group(2) != b"X" else b"Y"),
                  raw, count=1, flags=re.M | re.I)


# ---- one message --------------------------------------------------------------------------------


def check_message(label, path, raw, want_subject, args, record, message_ids, state):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    tag = f"[{label} {want_subject['kind']}]"

    # (1) MIME structure
    problems = []
    if msg.get_content_type() != "multipart/alternative":
        problems.append(f"top-level Content-Type is {msg.get_content_type()}")
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    types = [p.get_content_type() for p in parts]
    if types != ["text/plain", "text/html"]:
        problems.append(f"parts are {types}, want ['text/plain', 'text/html']")
    texts = {}
    for p in parts:
        ct = p.get_content_type()
        cs = p.get_content_charset()
        if cs != "utf-8":
            problems.append(f"{ct} charset is {cs!r}")
        try:
            texts[ct] = p.get_payload(decode=True).decode("utf-8")
            p.get_content()
        except Exception as e:
            problems.append(f"{ct} does not decode: {e}")
    check(not problems, f"{tag} (1) multipart/alternative: text/plain then text/html, utf-8, decodable",
          "; ".join(problems) or ", ".join(types))
    defects = [f"message: {d!r}" for d in msg.defects]
    for p in parts:
        defects += [f"{p.get_content_type()}: {d!r}" for d in p.defects]
    for name in set(msg.keys()):
        for value in msg.get_all(name):
            defects += [f"{name}: {d!r}" for d in getattr(value, "defects", ())]
    check(not defects, f"{tag} (1) parses without MIME or header defects", "; ".join(defects))

    # (2) RFC 8058
    lu = msg.get_all("List-Unsubscribe") or []
    lup = msg.get_all("List-Unsubscribe-Post") or []
    uris = []
    problems = []
    if len(lu) != 1:
        problems.append(f"{len(lu)} List-Unsubscribe headers")
    if lu:
        value = str(lu[0]).strip()
        if not re.fullmatch(r"<[^<>\s]+>(\s*,\s*<[^<>\s]+>)*", value):
            problems.append(f"not a comma-separated list of <URI>s: {value!r}")
        uris = re.findall(r"<([^<>\s]+)>", value)
        https = [u for u in uris if u.startswith(args.public_base.rstrip("/") + "/unsubscribe/")]
        mailto = [u for u in uris if u.lower().startswith("mailto:")]
        if not https or not https[0].startswith("https://"):
            problems.append(f"no <https://...> URI under the base URL {args.public_base} in {value!r}")
        want_mailto = 1 if args.mailto else 0
        if len(mailto) != want_mailto:
            problems.append(f"{len(mailto)} <mailto:...> URIs in {value!r}, want {want_mailto}")
        if len(https) != 1 or len(uris) != len(https) + len(mailto):
            problems.append(f"want exactly one HTTPS URI and {want_mailto} mailto, got {uris}")
        if args.mailto and mailto:
            # mailto:LOCAL+TOKEN@DOMAIN?subject=unsubscribe%20TOKEN, the token of its own purpose
            # (lower-case letters and digits) in the address and in the subject, not the link's.
            local, _, domain = args.mailto.partition("@")
            m = re.fullmatch(re.escape(local) + r"\+([a-z0-9]+)@" + re.escape(domain)
                             + r"\?subject=unsubscribe%20([a-z0-9]+)", mailto[0][len("mailto:"):])
            if not m or m.group(1) != m.group(2):
                problems.append(f"the mailto URI is not {local}+TOKEN@{domain}?subject=unsubscribe%20TOKEN: {mailto[0]}")
            elif https and m.group(1) in https[0]:
                problems.append("the mailto token is the https link's token")
    shown = "<https://...> and <mailto:...>" if args.mailto else "<https://...> alone (no mailto: configured)"
    check(not problems, f"{tag} (2) List-Unsubscribe: one header, {shown}",
          "; ".join(problems) or ", ".join(uris))
    lup_values = [str(v) for v in lup]
    check(lup_values == ["List-Unsubscribe=One-Click"],
          f"{tag} (2) List-Unsubscribe-Post exactly 'List-Unsubscribe=One-Click'", repr(lup_values))
    state["unsubscribe_uris"] = [u for u in uris if not u.lower().startswith("mailto:")]

    # (3) identity headers and the subject
    problems = []
    for name in ["From", "To", "Date", "Message-ID", "List-Id", "Subject", "MIME-Version"]:
        n = len(msg.get_all(name) or [])
        if n != 1:
            problems.append(f"{n} {name} headers")
    try:
        if msg["Date"] is None or msg["Date"].datetime is None:
            problems.append("Date does not parse")
        elif msg["Date"].datetime.tzinfo is None:
            problems.append("Date has no zone")
    except Exception as e:
        problems.append(f"Date does not parse: {e}")
    if msg["To"] is not None and [a.addr_spec for a in msg["To"].addresses] != [args.email]:
        problems.append(f"To is {str(msg['To'])!r}, want {args.email}")
    if msg["From"] is not None and [a.addr_spec for a in msg["From"].addresses] != [args.from_address]:
        problems.append(f"From is {str(msg['From'])!r}, want {args.from_address}")
    mid = str(msg["Message-ID"] or "").strip()
    if not re.fullmatch(r"<[^<>@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+>", mid):
        problems.append(f"Message-ID {mid!r} is not <local@domain>")
    elif mid in message_ids:
        problems.append(f"Message-ID {mid} repeats")
    message_ids.append(mid)
    check(not problems, f"{tag} (3) From, To, Date, Message-ID, List-Id present and well-formed",
          "; ".join(problems) or f"Message-ID {mid}, List-Id {str(msg['List-Id'])!r}")
    subject = str(msg["Subject"] or "")
    raw_subject = re.search(rb"^Subject:(.*?)\r?\n(?![ \t])", raw, re.S | re.M | re.I)
    raw_subject = raw_subject.group(1).decode("ascii", "replace").strip() if raw_subject else ""
    check(subject == want_subject["text"],
          f"{tag} (3) Subject decodes (RFC 2047) to the expected text",
          f"{subject!r}" + ("" if subject == want_subject["text"] else f", want {want_subject['text']!r}; raw {raw_subject!r}"))
    if want_subject["text"] != want_subject["text"].encode("ascii", "ignore").decode():
        check(raw.split(b"\r\n\r\n", 1)[0].isascii() and "=?" in raw_subject,
              f"{tag} (3) non-ASCII Subject is RFC 2047 encoded (header block is ASCII)", repr(raw_subject))

    # (4) DKIM
    asked = []
    dnsfunc = make_dnsfunc(record[0], record[1], asked)
    ok, log = verify(raw, dnsfunc)
    log = [l for l in log if not l.startswith("bh: ") and "valid" not in l]
    detail = f"looked up {sorted(set(asked))}" if ok else "; ".join(log) or "dkim.verify returned False"
    if not ok:
        notes = diagnose(raw, record[1], args.algorithm)
        detail += " | diagnosis: " + "; ".join(notes)
    check(ok, f"{tag} (4) DKIM ({args.algorithm}) verifies with dkimpy", detail)
    if not ok and not SHOWN_HEADERS:
        SHOWN_HEADERS.append(path)
        print(f"    header block of {os.path.basename(path)}:")
        print(indent(raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"), "      "))
    tags, _, _ = signature_tags(raw)
    tags = tags or {}
    h = [n.strip().lower().decode() for n in tags.get(b"h", b"").split(b":") if n.strip()]
    missing = [n for n in MUST_SIGN if n not in h]
    check(not missing, f"{tag} (4) h= covers {', '.join(MUST_SIGN)}",
          f"missing {missing} in h={':'.join(h)}" if missing else f"h={':'.join(h)}")
    want_a = b"ed25519-sha256" if args.algorithm == "ed25519" else b"rsa-sha256"
    got = {k: tags.get(k.encode(), b"").decode() for k in ["a", "d", "s", "c"]}
    want = {"a": want_a.decode(), "d": args.domain, "s": args.selector, "c": "relaxed/relaxed"}
    check(got == want, f"{tag} (4) signature tags a=, d=, s=, c=", f"{got}" + ("" if got == want else f", want {want}"))

    # (5) tampering is detected
    names = [n.encode() for n in h] or [n.encode() for n in MUST_SIGN]
    tampered_ok, _ = verify(tamper_subject(raw), dnsfunc)
    try:
        control = control_copy(raw, open(args.key, "rb").read(), args.algorithm, args.selector, args.domain, names)
        control_ok, control_log = verify(control, dnsfunc)
        control_tampered_ok, _ = verify(tamper_subject(control), dnsfunc)
    except Exception as e:
        control_ok, control_log, control_tampered_ok = False, [f"{type(e).__name__}: {e}"], True
    check(control_ok and not control_tampered_ok,
          f"{tag} control: the same message re-signed by dkimpy with this key verifies against the keygen record, "
          "and not with a tampered Subject",
          "" if control_ok and not control_tampered_ok
          else ("; ".join(control_log) if not control_ok else "the tampered control copy verified"))
    if ok:
        check(not tampered_ok, f"{tag} (5) a tampered Subject fails DKIM verification",
              "verification failed as it should" if not tampered_ok else "the tampered copy still verifies")
    else:
        # tidings' own signature already fails, so a failing tampered copy proves nothing about it;
        # the control copy above shows the checker rejects a tampered Subject.
        check(not tampered_ok and control_ok and not control_tampered_ok,
              f"{tag} (5) a tampered Subject fails DKIM verification",
              "shown on the dkimpy-signed control copy (tidings' own signature does not verify at all)")
    return msg, texts


# ---- main -----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--base-url", required=True, help="where the daemon listens")
    ap.add_argument("--public-base", required=True, help="site.base_url, as links in emails name it")
    ap.add_argument("--token", required=True)
    ap.add_argument("--outbox", required=True)
    ap.add_argument("--keygen-output", required=True)
    ap.add_argument("--key", required=True, help="the private key file (for the dkimpy control copy)")
    ap.add_argument("--algorithm", choices=["rsa", "ed25519"], required=True)
    ap.add_argument("--selector", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--from-address", required=True)
    ap.add_argument("--title", required=True, help="site.title, what {{ site }} renders to")
    ap.add_argument("--confirm-subject", required=True, help="mail.confirm_subject (a template)")
    ap.add_argument("--welcome-subject", required=True, help="mail.welcome_subject (a template)")
    ap.add_argument("--mailto", default="", help="mail.unsubscribe_mailto, if set (else no mailto: is expected)")
    ap.add_argument("--message-ids", required=True)
    ap.add_argument("--results", required=True)
    args = ap.parse_args()
    # The subjects as the reader should see them (the templates use nothing but {{ site }}).
    args.confirm_subject = args.confirm_subject.replace("{{ site }}", args.title)
    args.welcome_subject = args.welcome_subject.replace("{{ site }}", args.title)
    label = args.label
    message_ids = []
    try:
        run(args, label, message_ids)
    except Exception as e:  # a crash is a failed check, and the counts still reach the caller
        import traceback

        traceback.print_exc()
        check(False, f"[{label}] mail_conformance.py ran to the end", f"{type(e).__name__}: {e}")
    with open(args.message_ids, "a") as f:
        for mid in message_ids:
            f.write(mid + "\n")
    with open(args.results, "w") as f:
        f.write(f"{PASSED} {FAILED}\n")


def run(args, label, message_ids):
    record_name, record_value = parse_record(open(args.keygen_output).read())
    want_name = f"{args.selector}._domainkey.{args.domain}."
    if not check(record_name == want_name and bool(record_value) and "p=" in record_value,
                 f"[{label}] keygen printed the TXT record for {want_name}",
                 f"{record_name} {record_value[:60] if record_value else record_value}..."):
        return
    record = (record_name, record_value)
    base = args.base_url.rstrip("/")
    seen = set(glob.glob(os.path.join(args.outbox, "*.eml")))

    # subscribe -> confirmation email
    form = urllib.parse.urlencode(
        {"email": args.email, "tags": ["ai", "open-science"], "cadence": "weekly",
         "time_zone": "Europe/Berlin"},
        doseq=True,
    ).encode()
    status, _, body = http("POST", base + "/subscribe", form,
                           {"Content-Type": "application/x-www-form-urlencoded"})
    check(status == 200, f"[{label}] POST /subscribe", f"HTTP {status}")
    new = wait_for_messages(args.outbox, seen, 1)
    if not check(len(new) == 1, f"[{label}] the confirmation email reaches the SMTP sink",
                 f"{len(new)} new messages"):
        return
    seen.update(new)
    confirmation = open(new[0], "rb").read()
    msg, texts = check_message(label, new[0], confirmation,
                               {"kind": "confirmation", "text": args.confirm_subject},
                               args, record, message_ids, {})
    text = texts.get("text/plain") or ""
    m = re.search(re.escape(args.public_base.rstrip("/")) + r"/confirm/([A-Za-z0-9_-]+)", text)
    if not check(m is not None, f"[{label}] the confirmation's text part has {args.public_base}/confirm/TOKEN"):
        return

    # confirm -> welcome email
    status, _, _ = http("POST", f"{base}/confirm/{m.group(1)}", b"")
    check(status == 200, f"[{label}] POST /confirm/TOKEN", f"HTTP {status}")
    new = wait_for_messages(args.outbox, seen, 1)
    if not check(len(new) == 1, f"[{label}] the welcome email reaches the SMTP sink", f"{len(new)} new messages"):
        return
    seen.update(new)
    state = {}
    check_message(label, new[0], open(new[0], "rb").read(),
                  {"kind": "welcome", "text": args.welcome_subject}, args, record, message_ids, state)

    # RFC 8058 one-click unsubscribe from the welcome email's List-Unsubscribe
    uris = state.get("unsubscribe_uris") or []
    target = local_url(base, args.public_base, uris[0]) if uris else None
    if not check(target is not None, f"[{label}] one-click URI is under the base URL", repr(uris)):
        return
    status, _, body = http("POST", target, b"List-Unsubscribe=One-Click",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    check(status == 200, f"[{label}] one-click POST (List-Unsubscribe=One-Click) to the List-Unsubscribe URI",
          f"HTTP {status}")
    status, _, body = http("GET", f"{base}/api/subscribers/{urllib.parse.quote(args.email)}", None,
                           {"Authorization": f"Bearer {args.token}"})
    try:
        got = json.loads(body).get("status")
    except Exception:
        got = None
    check(status == 200 and got == "unsubscribed",
          f"[{label}] GET /api/subscribers/EMAIL says status 'unsubscribed'",
          f"HTTP {status}, status {got!r}")
    new = wait_for_messages(args.outbox, seen, 1, timeout=1.0)
    if new:
        print(f"    note: {len(new)} more message(s) after unsubscribing: {[os.path.basename(p) for p in new]}")


if __name__ == "__main__":
    main()
