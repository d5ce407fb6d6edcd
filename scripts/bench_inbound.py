#!/usr/bin/env python3
"""DSNs handled per second through tidings' inbound SMTP listener, with the daemon's peak RSS.

Usage: python3 scripts/bench_inbound.py [--subscribers N] [--connections C] [--bin PATH]

All on 127.0.0.1, Python's standard library only. It starts `tidings serve` (release binary)
with a file transport, the inbound listener on a free port and mail.return_path set; imports N
confirmed subscribers; runs digests once (N messages into the file outbox); then sends one DSN
per digest (a 5.1.1 hard bounce quoting the original's headers, as text/rfc822-headers, so each
is matched by Message-ID, stored raw, and bounces and suppresses its subscriber) over C
concurrent SMTP connections, and times it from the first connection to the last reply. It then
checks the database: every DSN stored, every subscriber bounced. Prints one JSON line.
"""
import argparse
import glob
import json
import os
import re
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-token-0123456789abcdef"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "tidings"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tidings-bench-inbound-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TIDINGS_SERVER_BIND": "127.0.0.1:0",
        "TIDINGS_DATABASE_PATH": f"{work}/t.db",
        "TIDINGS_FEEDS_MIRROR_DIR": f"{work}/feeds",
        "TIDINGS_CATALOG_LOAD_SAMPLE": "false",
        "TIDINGS_ADMIN_TOKEN": TOKEN,
        "TIDINGS_SITE_BASE_URL": "https://blog.example",
        "TIDINGS_MAIL_TRANSPORT": f"file:{work}/outbox",
        "TIDINGS_MAIL_FROM": "Blog <news@blog.example>",
        "TIDINGS_MAIL_RETURN_PATH": "bounces@blog.example",
        "TIDINGS_MAIL_INBOUND_BIND": "127.0.0.1:0",
        "TIDINGS_MAIL_INBOUND_MAX_CONNECTIONS_PER_IP": str(max(10, args.connections)),
        "RUST_LOG": "warn",
    }
    with open(f"{work}/list.csv", "w") as f:
        f.write("email,status\n")
        for i in range(args.subscribers):
            f.write(f"reader{i:06d}@example.com,confirmed\n")
    subprocess.run([args.bin, "subscriber", "import", f"{work}/list.csv"], env=env, cwd=work,
                   check=True, stdout=subprocess.DEVNULL)
    daemon = subprocess.Popen([args.bin, "serve"], env=env, cwd=work, stdout=subprocess.PIPE,
                              stderr=open(f"{work}/daemon.log", "w"), text=True)
    inbound = base = None
    while base is None:
        line = daemon.stdout.readline()
        if not line:
            sys.exit("daemon did not start; see " + work)
        if line.startswith("inbound on smtp://"):
            inbound = line.strip().split("//", 1)[1]
        if line.startswith("listening on "):
            base = line.strip().split(" ", 2)[2]

    def api(method, path, body=None):
        req = urllib.request.Request(base + path, method=method, data=body and json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read() or b"null")

    api("POST", "/api/articles", {"title": "News", "url": "https://blog.example/news", "tags": ["AI"],
                                  "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    report = api("POST", "/api/digests/run", {"now": True})
    assert report["sent"] == args.subscribers, report
    dsns = []
    for path in glob.glob(f"{work}/outbox/*.eml"):
        head = open(path, "rb").read().split(b"\r\n\r\n", 1)[0].decode()
        mid = re.search(r"^Message-ID: (<[^>]+>)", head, re.M | re.I).group(1)
        to = re.search(r"^To: (\S+)", head, re.M).group(1)
        dsns.append((to, mid))
    def message(to, mid):
        return ("From: MAILER-DAEMON@mx.example\r\nTo: bounces@blog.example\r\nSubject: Undelivered\r\n"
                "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
                "--B\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
                "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
                f"Final-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
                f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {mid}\r\nTo: {to}\r\n"
                "From: news@blog.example\r\nSubject: digest\r\n\r\n--B--\r\n")
    host, port = inbound.rsplit(":", 1)
    shares = [dsns[i::args.connections] for i in range(args.connections)]
    errors = []
    def send(share):
        try:
            s = smtplib.SMTP(host, int(port), timeout=120)
            for to, mid in share:
                s.sendmail("", ["bounces@blog.example"], message(to, mid))
            s.quit()
        except Exception as e:  # reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=send, args=(sh,)) for sh in shares]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    rss_kb = 0
    for line in open(f"/proc/{daemon.pid}/status"):
        if line.startswith("VmHWM:"):
            rss_kb = int(line.split()[1])
    daemon.terminate()
    daemon.wait(timeout=60)
    db = sqlite3.connect(f"{work}/t.db")
    stored = db.execute("SELECT count(*) FROM inbound_messages").fetchone()[0]
    bounced = db.execute("SELECT count(*) FROM subscribers WHERE status = 'bounced'").fetchone()[0]
    suppressed = db.execute("SELECT count(*) FROM suppressions").fetchone()[0]
    print(json.dumps({"dsns": len(dsns), "connections": args.connections, "seconds": round(seconds, 2),
                      "dsns_per_second": round(len(dsns) / seconds, 1), "peak_rss_mb": round(rss_kb / 1024, 1),
                      "stored": stored, "bounced": bounced, "suppressed": suppressed, "errors": errors[:3],
                      "work": work}))
    ok = not errors and stored == bounced == suppressed == len(dsns)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
