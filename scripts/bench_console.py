#!/usr/bin/env python3
"""The client half of scripts/bench_console.sh (issue 25: the console, measured at the HTTP answer).

  pick DB                 prints the address of a subscriber with a history (several deliveries and
                          an event), from a SQLite database written by seed_console.py
  measure BASE EMAIL      logs in as BENCH_USER / BENCH_PASSWORD (environment), then for each console
                          URL: a warm-up, then N sequential requests on one keep-alive connection;
                          prints p50/p95 in ms per URL with PASS/FAIL against its target, and
                          appends one JSON line per URL to --results
  summary FILE            medians over the runs in a results file, one line per engine and URL

Python 3 standard library only.
"""

import argparse
import http.client
import json
import os
import re
import sqlite3
import statistics
import sys
import time
import urllib.parse

# (label, path, p50 target ms, p95 target ms or None)
def urls(email):
    search = "/admin/subscribers?q="
    return [
        ("search q=gmail", search + "gmail", 50, 150),
        ("search q=@example.org", search + urllib.parse.quote("@example.org"), 50, 150),
        ("search q=ann", search + "ann", 50, 150),
        ("search q=zebulon (rare)", search + "zebulon", 50, 150),
        ("search q=gmail&status=bounced", search + "gmail&status=bounced", 50, 150),
        ("search q=gmail&tag=rust", search + "gmail&tag=rust", 50, 150),
        ("dashboard /admin", "/admin", 100, None),
        ("subscriber page", "/admin/subscribers/" + urllib.parse.quote(email, safe="@+"), 50, None),
    ]


def pick(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    # Soft bounces keep the subscriber in later runs: someone with many deliveries and events.
    row = con.execute(
        """SELECT s.email, (SELECT count(*) FROM deliveries d WHERE d.subscriber_id = s.id) AS n
             FROM subscribers s
            WHERE s.id IN (SELECT subscriber_id FROM events
                            WHERE delivery_id IS NOT NULL AND subscriber_id IS NOT NULL
                            ORDER BY id LIMIT 500)
            ORDER BY n DESC, s.id LIMIT 1"""
    ).fetchone()
    if row is None or row[1] == 0:
        sys.exit("error: no subscriber with deliveries and an event in " + db)
    print(row[0])


def cookies(resp):
    jar = {}
    for name, value in resp.getheaders():
        if name.lower() == "set-cookie":
            k, _, v = value.split(";", 1)[0].partition("=")
            jar[k.strip()] = v.strip()
    return jar


def login(conn, user, password):
    conn.request("GET", "/admin/login")
    resp = conn.getresponse()
    body = resp.read().decode()
    if resp.status != 200:
        sys.exit(f"error: GET /admin/login answered {resp.status}")
    jar = cookies(resp)
    m = re.search(r'name="csrf"\s+value="([^"]+)"', body) or re.search(
        r'value="([^"]+)"\s+name="csrf"', body
    )
    if not m or "tidings_login" not in jar:
        sys.exit("error: /admin/login gave no csrf field or tidings_login cookie")
    form = urllib.parse.urlencode({"csrf": m.group(1), "username": user, "password": password})
    conn.request(
        "POST",
        "/admin/login",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "tidings_login=" + jar["tidings_login"],
        },
    )
    resp = conn.getresponse()
    resp.read()
    session = cookies(resp).get("tidings_session")
    if resp.status != 303 or not session:
        sys.exit(f"error: POST /admin/login answered {resp.status} without a session")
    return "tidings_session=" + session


def pct(sorted_ms, p):
    # nearest rank
    k = max(0, min(len(sorted_ms) - 1, int(round(p / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def measure(args):
    u = urllib.parse.urlsplit(args.base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    cookie = login(conn, os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"])
    headers = {"Cookie": cookie}
    failed = 0
    out = open(args.results, "a") if args.results else None
    print(f"{'URL':34} {'p50 ms':>8} {'p95 ms':>8}  target            verdict  (n={args.n})")
    for label, path, t50, t95 in urls(args.email):
        times = []
        for i in range(args.warmup + args.n):
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            ms = (time.perf_counter() - t0) * 1000
            if resp.status != 200:
                sys.exit(f"error: GET {path} answered {resp.status}: {body[:300]!r}")
            if i >= args.warmup:
                times.append(ms)
        times.sort()
        p50, p95 = pct(times, 50), pct(times, 95)
        ok = p50 <= t50 and (t95 is None or p95 <= t95)
        failed += not ok
        target = f"p50<={t50}" + (f" p95<={t95}" if t95 else "")
        print(f"{label:34} {p50:8.1f} {p95:8.1f}  {target:17} {'PASS' if ok else 'FAIL'}",
              flush=True)
        if out:
            out.write(json.dumps({"engine": args.engine, "url": label, "path": path,
                                  "p50": round(p50, 2), "p95": round(p95, 2), "t50": t50,
                                  "t95": t95, "n": args.n, "bytes": len(body)}) + "\n")
    if out:
        out.close()
    return failed


def summary(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    groups = {}
    for r in rows:
        groups.setdefault((r["engine"], r["url"]), []).append(r)
    failed = 0
    print(f"{'engine':9} {'URL':34} {'runs':>4} {'p50 ms':>8} {'p95 ms':>8}  verdict"
          "  (medians over runs)")
    for (engine, label), rs in groups.items():
        p50 = statistics.median(r["p50"] for r in rs)
        p95 = statistics.median(r["p95"] for r in rs)
        t50, t95 = rs[0]["t50"], rs[0]["t95"]
        ok = p50 <= t50 and (t95 is None or p95 <= t95)
        failed += not ok
        print(f"{engine:9} {label:34} {len(rs):4} {p50:8.1f} {p95:8.1f}  "
              f"{'PASS' if ok else 'FAIL'}")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pick")
    p.add_argument("db")
    m = sub.add_parser("measure")
    m.add_argument("base")
    m.add_argument("email")
    m.add_argument("--n", type=int, default=50)
    m.add_argument("--warmup", type=int, default=5)
    m.add_argument("--engine", default="?")
    m.add_argument("--results")
    s = sub.add_parser("summary")
    s.add_argument("file")
    args = ap.parse_args()
    if args.cmd == "pick":
        pick(args.db)
    elif args.cmd == "measure":
        sys.exit(1 if measure(args) else 0)
    else:
        sys.exit(1 if summary(args.file) else 0)


if __name__ == "__main__":
    main()
