#!/usr/bin/env python3
"""Cold tag feeds for scripts/bench.sh: requests every tag feed of a running tidings once in every
format and times each answer.

    bench_feeds.py --port PORT --tags T [--formats feed.xml,atom.xml,feed.json]

Tags are "Topic 0000".. as made by bench_catalog.py (path /tags/topic-0000/<format>). The requests
go one after another on one keep-alive connection, a plain GET each (no validators, no gzip), the
clock running from just before the request is sent until the whole body is read. For tag i the
formats are asked starting at format i mod 3, so each tag's first request (the one that finds
nothing of that tag rendered, even if the daemon renders a tag's formats together) is spread evenly
over the formats. Prints `key value` lines:

    cold_count, cold_median_ms, cold_p90_ms, cold_max_ms   the first request of each tag
    all_count, all_median_ms, all_p90_ms, all_max_ms       every request
    missing (404s: tags no article carries), bytes (sum of the bodies), seconds (the whole sweep)

Standard library only.
"""

import argparse
import http.client
import math
import statistics
import time


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tags", type=int, required=True)
    ap.add_argument("--formats", default="feed.xml,atom.xml,feed.json")
    a = ap.parse_args()
    formats = a.formats.split(",")

    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
    cold, every = [], []
    missing = 0
    total = 0
    start = time.perf_counter()
    for i in range(a.tags):
        slug = "topic-%04d" % i
        first = True
        for k in range(len(formats)):
            fmt = formats[(i + k) % len(formats)]
            path = "/tags/%s/%s" % (slug, fmt)
            t0 = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            ms = (time.perf_counter() - t0) * 1000
            if r.status == 404:
                missing += 1
                continue
            if r.status != 200:
                raise SystemExit("GET %s: HTTP %d %r" % (path, r.status, body[:200]))
            total += len(body)
            every.append(ms)
            if first:
                cold.append(ms)
                first = False
    seconds = time.perf_counter() - start
    if not cold:
        raise SystemExit("no tag feed answered 200")
    for name, values in (("cold", cold), ("all", every)):
        print("%s_count %d" % (name, len(values)))
        print("%s_median_ms %.2f" % (name, statistics.median(values)))
        print("%s_p90_ms %.2f" % (name, pct(values, 90)))
        print("%s_max_ms %.2f" % (name, max(values)))
    print("missing %d" % missing)
    print("bytes %d" % total)
    print("seconds %.1f" % seconds)


if __name__ == "__main__":
    main()
