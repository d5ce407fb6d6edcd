#!/usr/bin/env python3
"""Followed blogs at scale, for scripts/bench_sources.sh: one full round of polls of many sources,
and the time from a WebSub push to the entry in /feed.xml.

    bench_sources.py --bin target/release/tidings --nginx /usr/sbin/nginx --work DIR
                     [--sources 10000] [--hosts 100] [--changed 0.1] [--pushes 30]

1. Writes `--sources` small RSS feeds (3 entries each) and serves them with nginx on `--hosts`
   loopback addresses (127.0.0.2 …), one port: feed i is on 127.0.0.(2 + i % hosts), so
   `sources.per_host` (2) applies per address. nginx answers conditional requests itself.
2. Starts tidings (SQLite, sources.allow_private = 127.0.0.0/8) and adds every feed through
   `POST /api/sources` (8 clients at once); the first round reads them all (200s): its time, from
   the first add to the last fetch, is reported.
3. Stops tidings, gives `--changed` of the feeds a new entry (the rest are answered 304), makes
   every source due, starts tidings again and waits until every source has been fetched: the
   round's time (from exec, and from the first fetch of the round to the last), the answers
   (200/304/other) and the daemon's peak RSS (VmHWM) are reported.
4. A feed with a hub (this script plays the hub on 127.0.0.102 and verifies the subscription):
   `--pushes` times, a new entry is added and a signed push sent to the callback; the time until
   /feed.xml holds the entry is measured (p50, p90, max).

Prints `key value` lines. Standard library only.
"""

import argparse
import concurrent.futures
import hashlib
import hmac
import http.client
import http.server
import json
import math
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from email.utils import formatdate

TOKEN = "bench-sources-token"


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def rss(title, items, extra=""):
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:atom="http://www.w3.org/2005/Atom"><channel>',
        f"<title>{title}</title><link>http://bench.example/</link><description>bench</description>{extra}",
    ]
    for guid, link, t, date in items:
        out.append(
            f"<item><guid>{guid}</guid><link>{link}</link><title>{t}</title>"
            f"<description>{t}, the text of it.</description><category>Bench</category>"
            f"<pubDate>{date}</pubDate></item>"
        )
    out.append("</channel></rss>\n")
    return "".join(out)


def feed_items(i, n, now):
    return [
        (
            f"feed{i}-entry{j}",
            f"http://bench.example/{i}/{j}",
            f"Feed {i} entry {j}",
            formatdate(now - 3600 * (n - j) - i, usegmt=True),
        )
        for j in range(n)
    ]


class Daemon:
    def __init__(self, args, work, port):
        self.args, self.work, self.port = args, work, port
        self.proc = None

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env.update(
            {
                "TIDINGS_DATABASE_PATH": os.path.join(self.work, "tidings.db"),
                "TIDINGS_FEEDS_MIRROR_DIR": os.path.join(self.work, "mirror"),
                "TIDINGS_MAIL_TRANSPORT": "file:" + os.path.join(self.work, "outbox"),
                "TIDINGS_CATALOG_LOAD_SAMPLE": "false",
                "TIDINGS_ADMIN_TOKEN": TOKEN,
                "TIDINGS_SERVER_BIND": f"127.0.0.1:{self.port}",
                "TIDINGS_SITE_BASE_URL": f"http://127.0.0.1:{self.port}",
                "TIDINGS_SOURCES_ALLOW_PRIVATE": "127.0.0.0/8",
                "TIDINGS_AUDIENCE_ENABLED": "false",
                "RUST_LOG": "warn",
            }
        )
        return env

    def start(self):
        self.started = time.time()
        log = open(os.path.join(self.work, "daemon.log"), "ab")
        self.proc = subprocess.Popen(
            [self.args.bin, "serve"],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=self.work,
        )
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on"):
            sys.exit(f"tidings did not start: {line!r}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def hwm_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def api(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, (json.loads(data) if data else None)


def db_rows(work, sql, params=()):
    conn = sqlite3.connect(f"file:{os.path.join(work, 'tidings.db')}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_all_fetched(work, after_us, count, limit_s):
    deadline = time.time() + limit_s
    while True:
        done = db_rows(
            work, "SELECT COUNT(*) FROM sources WHERE last_fetch_us >= ? AND hub IS NULL", (after_us,)
        )[0][0]
        if done >= count:
            return
        if time.time() > deadline:
            sys.exit(f"only {done} of {count} sources fetched within {limit_s} s")
        time.sleep(0.2)


class Hub(http.server.ThreadingHTTPServer):
    daemon_threads = True


def run_hub(port, state):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path != "/push-feed.xml":
                self.send_error(404)
                return
            with state["lock"]:
                body = state["feed"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header(
                "Link",
                f'<http://127.0.0.102:{port}/hub>; rel="hub", '
                f'<http://127.0.0.102:{port}/push-feed.xml>; rel="self"',
            )
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state["requests"].append(form)
            if form.get("hub.mode") == "subscribe":
                threading.Thread(target=verify, args=(form, state), daemon=True).start()

    server = Hub(("127.0.0.102", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def verify(form, state):
    time.sleep(0.1)
    q = urllib.parse.urlencode(
        {
            "hub.mode": "subscribe",
            "hub.topic": form["hub.topic"],
            "hub.challenge": "bench-challenge",
            "hub.lease_seconds": "864000",
        }
    )
    with urllib.request.urlopen(f"{form['hub.callback']}?{q}", timeout=10) as r:
        state["verified"] = r.read() == b"bench-challenge"
    state["secret"] = form["hub.secret"]
    state["callback"] = form["hub.callback"]


def push_latency(d, args):
    port = free_port("127.0.0.102")
    now = time.time()
    items = feed_items(999999, 3, now)
    state = {"lock": threading.Lock(), "feed": rss("Pushed", items), "requests": []}
    run_hub(port, state)
    status, source = d.api("POST", "/api/sources", {"url": f"http://127.0.0.102:{port}/push-feed.xml", "name": "pushed"})
    if status != 201:
        sys.exit(f"cannot add the pushed source: {status} {source}")
    deadline = time.time() + 30
    while not state.get("verified"):
        if time.time() > deadline:
            sys.exit("the hub subscription was never verified")
        time.sleep(0.05)
    while d.api("GET", f"/api/sources/{source['id']}")[1]["websub_state"] != "active":
        time.sleep(0.05)
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    latencies = []
    for k in range(args.pushes):
        title = f"Pushed entry {k}"
        items.insert(0, (f"pushed-{k}", f"http://bench.example/pushed/{k}", title, formatdate(time.time(), usegmt=True)))
        with state["lock"]:
            state["feed"] = rss("Pushed", items[:20])
        body = b"<rss/>"
        sig = "sha256=" + hmac.new(state["secret"].encode(), body, hashlib.sha256).hexdigest()
        path = urllib.parse.urlparse(state["callback"]).path
        t0 = time.perf_counter()
        pc = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        pc.request("POST", path, body=body, headers={"X-Hub-Signature": sig})
        r = pc.getresponse()
        r.read()
        pc.close()
        if r.status != 202:
            sys.exit(f"push answered {r.status}")
        while True:
            conn.request("GET", "/feed.xml")
            r = conn.getresponse()
            text = r.read().decode()
            if title in text:
                break
            if time.perf_counter() - t0 > 30:
                sys.exit(f"{title} never reached /feed.xml")
            time.sleep(0.002)
        latencies.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.2)
    return latencies


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sources", type=int, default=10000)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--changed", type=float, default=0.1)
    ap.add_argument("--pushes", type=int, default=30)
    args = ap.parse_args()
    work = args.work
    os.makedirs(os.path.join(work, "feeds"), exist_ok=True)
    now = time.time()
    for i in range(args.sources):
        with open(os.path.join(work, "feeds", f"{i}.xml"), "w") as f:
            f.write(rss(f"Feed {i}", feed_items(i, 3, now)))

    np = free_port("127.0.0.2")
    listens = "\n".join(f"        listen 127.0.0.{2 + h}:{np};" for h in range(args.hosts))
    user = "user root;" if os.getuid() == 0 else ""
    os.makedirs(os.path.join(work, "nginx"), exist_ok=True)
    with open(os.path.join(work, "nginx", "nginx.conf"), "w") as f:
        f.write(
            f"""{user}
worker_processes 1;
daemon off;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ application/rss+xml xml; }}
    access_log off;
    etag on;
    client_body_temp_path {work}/nginx/body;
    proxy_temp_path {work}/nginx/proxy;
    fastcgi_temp_path {work}/nginx/fastcgi;
    uwsgi_temp_path {work}/nginx/uwsgi;
    scgi_temp_path {work}/nginx/scgi;
    server {{
{listens}
        root {work}/feeds;
    }}
}}
"""
        )
    nginx = subprocess.Popen(
        [args.nginx, "-p", f"{work}/nginx", "-c", f"{work}/nginx/nginx.conf", "-e", f"{work}/nginx/error.log"]
    )
    try:
        time.sleep(0.5)
        port = free_port()
        d = Daemon(args, work, port)
        d.start()
        url = lambda i: f"http://127.0.0.{2 + i % args.hosts}:{np}/{i}.xml"
        t_add = time.time()

        def add(i):
            status, body = d.api("POST", "/api/sources", {"url": url(i), "name": f"feed {i}"})
            if status != 201:
                raise RuntimeError(f"adding {url(i)}: {status} {body}")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(add, range(args.sources)))
        added_s = time.time() - t_add
        wait_all_fetched(work, 0, args.sources, 1800)
        first = db_rows(work, "SELECT MAX(last_fetch_us) FROM sources")[0][0] / 1e6 - t_add
        articles = db_rows(work, "SELECT COUNT(*) FROM articles")[0][0]
        first_hwm = d.hwm_mb()
        d.stop()

        changed = int(args.sources * args.changed)
        later = time.time()
        for i in range(changed):
            with open(os.path.join(work, "feeds", f"{i}.xml"), "w") as f:
                f.write(rss(f"Feed {i}", feed_items(i, 4, later)))
        conn = sqlite3.connect(os.path.join(work, "tidings.db"), timeout=30)
        conn.execute("UPDATE sources SET next_fetch_us = 0")
        conn.commit()
        conn.close()
        start_us = int(time.time() * 1e6)
        d.start()
        wait_all_fetched(work, start_us, args.sources, 1800)
        hwm = d.hwm_mb()
        (lo, hi) = db_rows(work, "SELECT MIN(last_fetch_us), MAX(last_fetch_us) FROM sources WHERE hub IS NULL")[0]
        statuses = dict(db_rows(work, "SELECT last_status, COUNT(*) FROM sources GROUP BY last_status"))
        added = db_rows(work, "SELECT COUNT(*) FROM articles")[0][0] - articles
        latencies = push_latency(d, args) if args.pushes > 0 else []
        d.stop()
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=30)

    print(f"sources {args.sources}")
    print(f"hosts {args.hosts}")
    print(f"first_round_s {first:.1f}")
    print(f"first_round_adding_s {added_s:.1f}")
    print(f"first_round_articles {articles}")
    print(f"first_round_vmhwm_mb {first_hwm:.1f}")
    print(f"round_from_exec_s {(hi - start_us) / 1e6:.1f}")
    print(f"round_fetches_s {(hi - lo) / 1e6:.1f}")
    print(f"round_200 {statuses.get(200, 0)}")
    print(f"round_304 {statuses.get(304, 0)}")
    print(f"round_other {sum(v for k, v in statuses.items() if k not in (200, 304))}")
    print(f"round_articles_added {added}")
    print(f"round_vmhwm_mb {hwm:.1f}")
    if latencies:
        print(f"push_p50_ms {statistics.median(latencies):.1f}")
        print(f"push_p90_ms {pct(latencies, 90):.1f}")
        print(f"push_max_ms {max(latencies):.1f}")
        print(f"pushes {len(latencies)}")


if __name__ == "__main__":
    main()
