#!/usr/bin/env python3
"""Publish latency for scripts/bench.sh: POSTs new articles to a running tidings and measures how
long each takes to show up in the site feed and in its first tag's feed.

    bench_publish.py --port PORT --token TOKEN [--count 50] [--tags 1000] [--gap 0.2] [--seed 7]

For each article: a fresh 2-3 existing tags ("Topic 0000".. as made by bench_catalog.py), the
clock starts right before the POST is sent (on its own keep-alive connection, answered in a
thread), and the main thread polls GET /feed.xml and GET /tags/<first tag>/feed.xml back to back
on two more keep-alive connections (with If-None-Match of the last seen ETag, so an unchanged
feed is a 304) until both bodies contain the new article's URL. Prints `key value` lines:
visible_median_ms, visible_p90_ms, visible_max_ms, post_median_ms, post_p90_ms, count, polls.
Standard library only.
"""

import argparse
import http.client
import json
import math
import random
import statistics
import sys
import threading
import time


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class Poller:
    """Keeps one keep-alive connection and the last ETag of one path."""

    def __init__(self, port, path):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.path = path
        self.etag = None
        self.body = b""
        self.polls = 0

    def fetch(self):
        headers = {"If-None-Match": self.etag} if self.etag else {}
        self.conn.request("GET", self.path, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        self.polls += 1
        if r.status == 200:
            self.etag = r.getheader("ETag")
            self.body = body
        elif r.status != 304:
            raise SystemExit("GET %s: HTTP %d %r" % (self.path, r.status, body[:200]))
        return self.body


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.2, help="seconds between publishes")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    # The POST's answer is read by a thread; let it have the interpreter soon after it arrives.
    sys.setswitchinterval(0.0001)

    rng = random.Random(a.seed)
    post = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    site = Poller(a.port, "/feed.xml")
    site.fetch()
    run = "%d" % time.time()
    visible, answered = [], []
    for n in range(a.count):
        tags = ["Topic %04d" % t for t in rng.sample(range(a.tags), rng.randint(2, 3))]
        first_slug = tags[0].lower().replace(" ", "-")
        tag = Poller(a.port, "/tags/%s/feed.xml" % first_slug)
        tag.fetch()
        slug = "published-%s-%03d" % (run, n)
        url = "https://blog.example/posts/" + slug
        body = json.dumps({
            "slug": slug,
            "title": "Published during the benchmark, number %d" % n,
            "url": url,
            "summary": "A new article posted through the admin API to time publishing.",
            "content_html": "<p>Fresh content for the publish-latency benchmark.</p>" * 8,
            "author": "Bench",
            "tags": tags,
            "reading_time_minutes": 3,
        }).encode()
        needle = url.encode()
        result = {}

        def send():
            post.request("POST", "/api/articles", body=body, headers={
                "Authorization": "Bearer " + a.token,
                "Content-Type": "application/json",
            })
            r = post.getresponse()
            result["status"] = r.status
            result["body"] = r.read()
            result["t"] = time.perf_counter()

        t0 = time.perf_counter()
        th = threading.Thread(target=send)
        th.start()
        seen_site = seen_tag = False
        while not (seen_site and seen_tag):
            if not seen_site:
                seen_site = needle in site.fetch()
            if not seen_tag:
                seen_tag = needle in tag.fetch()
            if time.perf_counter() - t0 > a.timeout:
                raise SystemExit("article %s not visible after %.0f s" % (slug, a.timeout))
        t1 = time.perf_counter()
        th.join()
        if result.get("status") != 201:
            raise SystemExit("POST: HTTP %s %r" % (result.get("status"), result.get("body", b"")[:300]))
        visible.append((t1 - t0) * 1000)
        answered.append((result["t"] - t0) * 1000)
        tag.conn.close()
        time.sleep(a.gap)

    print("count %d" % len(visible))
    print("polls %d" % site.polls)
    print("visible_median_ms %.2f" % statistics.median(visible))
    print("visible_p90_ms %.2f" % pct(visible, 90))
    print("visible_max_ms %.2f" % max(visible))
    print("post_median_ms %.2f" % statistics.median(answered))
    print("post_p90_ms %.2f" % pct(answered, 90))
    print("visible_all_ms " + " ".join("%.1f" % v for v in visible))


if __name__ == "__main__":
    main()
