#!/usr/bin/env python3
"""Helpers for scripts/bench_digest.sh: the data sets it feeds tidings, and the summary table.

  articles OLD.json NEW.json     one old article carrying every tag (so the tags exist before the
                                 subscribers who follow them are imported), and the recent articles
                                 the digests are about (published in the last day, ~20 KB digest)
  subscribers FILE.csv N         N confirmed subscribers, a realistic mix (half follow every tag, the
                                 rest 1-3 tags; daily and weekly; a dozen time zones), deterministic
  grow DB N                      adds confirmed subscribers straight into DB's `subscribers` table
                                 (same mix) until it holds N, with window_start_us just before the
                                 recent articles entered the catalog, as `subscriber import` would
  summary RESULTS.json           prints the summary table (messages/s, ratios, targets, met/missed)
  sinkcount FILE                 the last `mesg=` counter smtp-sink -c wrote to FILE
  procstat PID                   utime+stime of PID in clock ticks (for CPU%)

Standard library only.
"""

import datetime as dt
import json
import random
import re
import sqlite3
import sys

TAGS = ["AI", "Open Science", "Ethics", "Climate", "Policy"]
SLUGS = [t.lower().replace(" ", "-") for t in TAGS]
# Tags of the recent articles: every tag appears in three of them, so every follower gets mail.
ARTICLE_TAGS = [
    ["AI", "Ethics"],
    ["Open Science"],
    ["Climate", "Policy", "Open Science"],
    ["AI"],
    ["Ethics", "Policy"],
    ["Climate"],
    ["Open Science", "AI", "Climate"],
    ["Policy", "Ethics"],
]
ZONES = [
    "UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York",
    "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Tokyo",
    "Asia/Kolkata", "Australia/Sydney", "Africa/Lagos",
]
WORDS = (
    "research data model results open method review policy climate evidence study network "
    "training ethics analysis public survey energy emissions benchmark replication archive "
    "software community funding journal preprint dataset measurement uncertainty governance"
).split()

SUMMARY_CHARS = 950   # each summary is in the digest twice (text and HTML): 8 of them make ~20 KB
CONTENT_CHARS = 2000


def prose(rng, chars):
    out, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16)))
        sentence = sentence[0].upper() + sentence[1:] + "."
        out.append(sentence)
        n += len(sentence) + 1
    return " ".join(out)[:chars].rstrip() + "."


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def articles(old_path, new_path):
    rng = random.Random(7)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    old = [{
        "slug": "bench-tags-origin",
        "title": "Where the tags came from",
        "url": "https://blog.example/bench-tags-origin",
        "summary": "An old article that carries every tag.",
        "content_html": "<p>" + prose(rng, 400) + "</p>",
        "tags": TAGS,
        "published_at": rfc3339(now - dt.timedelta(days=60)),
    }]
    new = []
    for i, tags in enumerate(ARTICLE_TAGS):
        slug = f"bench-digest-{i + 1}"
        paragraphs = "".join(f"<p>{prose(rng, 400)}</p>" for _ in range(CONTENT_CHARS // 400))
        new.append({
            "slug": slug,
            "title": f"{tags[0]}: " + " ".join(rng.choice(WORDS) for _ in range(6)).capitalize(),
            "url": f"https://blog.example/{slug}",
            "summary": prose(rng, SUMMARY_CHARS),
            "content_html": paragraphs,
            "tags": tags,
            "published_at": rfc3339(now - dt.timedelta(hours=20 - 2 * i)),
        })
    for path, data in ((old_path, old), (new_path, new)):
        with open(path, "w") as f:
            json.dump(data, f)


def mix(rng, i):
    """(email, tag slugs, cadence, zone) of subscriber i."""
    r = rng.random()
    tags = [] if r < 0.5 else rng.sample(SLUGS, 1 if r < 0.7 else 2 if r < 0.9 else 3)
    cadence = "weekly" if rng.random() < 0.2 else "daily"
    return f"reader{i:07d}@mail{i % 97}.example.org", sorted(tags), cadence, rng.choice(ZONES)


def subscribers(path, n):
    rng = random.Random(11)
    with open(path, "w") as f:
        f.write("email,tags,cadence,time_zone,status\n")
        for i in range(n):
            email, tags, cadence, zone = mix(rng, i)
            f.write(f"{email},{';'.join(tags)},{cadence},{zone},confirmed\n")


def grow(db_path, target):
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    have = conn.execute("SELECT count(*) FROM subscribers").fetchone()[0]
    # Just before the recent articles entered the catalog: everything recent is new to them.
    first_new = conn.execute(
        "SELECT min(added_us) FROM articles WHERE slug LIKE 'bench-digest-%'").fetchone()[0]
    if first_new is None:
        sys.exit("grow: no bench-digest-* articles in the database")
    window = first_new - 1_000_000
    at = dt.datetime.fromtimestamp(window / 1e6, dt.timezone.utc)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rng = random.Random(13)
    start = conn.execute("SELECT coalesce(max(id), 0) FROM subscribers").fetchone()[0] + 1
    rows, tag_rows = [], []
    with conn:
        for k in range(target - have):
            sid = start + k
            email, tags, cadence, zone = mix(rng, 5_000_000 + sid)
            rows.append((sid, email, cadence, zone, stamp, stamp, window))
            tag_rows.extend((sid, t) for t in tags)
            if len(rows) >= 50_000:
                flush(conn, rows, tag_rows)
        flush(conn, rows, tag_rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = conn.execute("SELECT count(*) FROM subscribers WHERE status='confirmed'").fetchone()[0]
    conn.close()
    print(total)


def flush(conn, rows, tag_rows):
    conn.executemany(
        "INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at, confirmed_at, "
        "window_start_us) VALUES (?, ?, 'confirmed', ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO subscriber_tags (subscriber_id, tag_slug) VALUES (?, ?)", tag_rows)
    rows.clear()
    tag_rows.clear()


def sinkcount(path):
    data = open(path, "rb").read().decode("ascii", "replace")
    counts = re.findall(r"mesg=(\d+)", data)
    print(counts[-1] if counts else 0)


def procstat(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        print(int(fields[11]) + int(fields[12]))
    except OSError:
        print(0)


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def median_runs(r):
    """Each variant's run with the median msg/s (the middle one; of an even count the lower),
    with every run's rate in "all" and their count in "of"."""
    out = {}
    for key, v in r.get("variants", {}).items():
        runs = sorted(r.get("runs", {}).get(key) or [v], key=lambda x: x["msgs"])
        mid = dict(runs[(len(runs) - 1) // 2])
        mid["all"], mid["of"] = [x["msgs"] for x in runs], len(runs)
        out[key] = mid
    return out


def summary(path):
    r = json.load(open(path))
    rows = []

    def row(what, value, ratio, target, met):
        rows.append((what, value, ratio, target, "-" if met is None else ("met" if met else "MISSED")))

    base = r.get("baseline_msgs")
    row("smtp-source -> smtp-sink (baseline)", fmt(base) + " msg/s", "1.00", "", None)
    rsa_speed = r.get("openssl_rsa_sign")
    row("openssl speed rsa2048 sign (1 core)", fmt(rsa_speed, 1) + " sign/s", "", "", None)
    # Targets: no DKIM and VERP >= 0.9 x smtp-source on SQLite (issue 9), >= 0.8 on PostgreSQL
    # for one node and for two together (issue 10).
    on_pg = r.get("database") == "postgres"
    plain = 0.8 if on_pg else 0.9
    variants = median_runs(r)
    for key, label, goal, against in (
        ("base", "BENCH_BASE_BIN's tidings, no DKIM", plain, "baseline"),
        ("none", "tidings, no DKIM", plain, "baseline"),
        ("verp", "tidings, no DKIM, VERP on", plain, "baseline"),
        ("2nodes", "tidings, two nodes together, no DKIM", 0.8, "baseline"),
        ("tls", "tidings, no DKIM, PostgreSQL over BENCH_PG_TLS", 0.8, "baseline"),
        ("ed25519", "tidings, Ed25519 DKIM", 0.6, "baseline"),
        ("rsa", "tidings, RSA-2048 DKIM", 0.5, "openssl"),
    ):
        v = variants.get(key)
        if not v:
            continue
        ref = base if against == "baseline" else rsa_speed
        ratio = v["msgs"] / ref if ref else None
        note = "" if v.get("complete") else f" (stopped at {v['time_limit']} s)"
        if v.get("of", 1) > 1:
            note += f", median of {v['of']} runs: " + " / ".join(fmt(m) for m in v["all"])
        row(f"{label}: {fmt(v['sent'])} sent in {fmt(v['seconds'], 1)} s{note}",
            fmt(v["msgs"]) + " msg/s", fmt(ratio, 2),
            f">= {goal} x {'smtp-source' if against == 'baseline' else 'openssl sign/s'}",
            ratio is not None and ratio >= goal)
        if against == "openssl" and base:
            row("  (same, against smtp-source)", "", fmt(v["msgs"] / base, 2), "", None)
        row(f"  peak RSS of `digest run` ({key})", fmt(v["rss_kb"] / 1024, 1) + " MB", "",
            "<= 64 MB", v["rss_kb"] <= 64 * 1024)
        row(f"  CPU: tidings {fmt(v['cpu_pct'])}%, smtp-sink {fmt(v['sink_cpu_pct'])}%", "", "", "", None)
    off, on, before = (variants.get(k) for k in ("none", "verp", "base"))
    if off and on:
        ratio = on["msgs"] / off["msgs"]
        row("VERP on / off", "", fmt(ratio, 2), "within 5%", abs(ratio - 1) <= 0.05)
    tls = variants.get("tls")
    if off and tls:
        ratio = tls["msgs"] / off["msgs"]
        row("TLS to PostgreSQL / without (medians)", "", fmt(ratio, 2), "within 10%",
            ratio >= 0.9)
    if off and before:
        ratio = off["msgs"] / before["msgs"]
        row("this build / BENCH_BASE_BIN (medians)", "", fmt(ratio, 2), "", None)
    for key, label in (("plan_100k", "planning, dry run"), ("plan_1m", "planning, dry run")):
        p = r.get(key)
        if not p:
            continue
        row(f"{label}, {fmt(p['subscribers'])} subscribers ({fmt(p['planned'])} planned)",
            fmt(p["seconds"], 2) + " s", "", "<= 10 s" if key == "plan_1m" else "",
            p["seconds"] <= 10 if key == "plan_1m" else None)
        row(f"  peak RSS of the dry run", fmt(p["rss_kb"] / 1024, 1) + " MB", "", "", None)
    if r.get("message_bytes"):
        row(f"digest size, mean of {r['message_sample']} subscribers of the mix (largest: every tag"
            f" {fmt(r.get('message_max_bytes'))} B)", fmt(r["message_bytes"]) + " B", "", "", None)
    if r.get("import_seconds"):
        row(f"`subscriber import` of {fmt(r['subscribers'])} rows", fmt(r["import_seconds"], 1) + " s",
            "", "", None)
    widths = [max(len(str(x[i])) for x in rows + [("what", "value", "ratio", "target", "result")])
              for i in range(5)]
    line = lambda x: "| " + " | ".join(str(v).ljust(widths[i]) for i, v in enumerate(x)) + " |"
    print(line(("what", "value", "ratio", "target", "result")))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for x in rows:
        print(line(x))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "articles":
        articles(*args)
    elif cmd == "subscribers":
        subscribers(args[0], int(args[1]))
    elif cmd == "grow":
        grow(args[0], int(args[1]))
    elif cmd == "summary":
        summary(args[0])
    elif cmd == "sinkcount":
        sinkcount(args[0])
    elif cmd == "procstat":
        procstat(args[0])
    else:
        sys.exit(f"unknown command {cmd}")
