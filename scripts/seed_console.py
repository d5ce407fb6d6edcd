#!/usr/bin/env python3
"""Writes a list the size of a large publisher's into a tidings SQLite database, for measuring the
admin's console (issue 25: subscriber search, the dashboard, one subscriber's page):

  - N subscribers (1,000,000 by default) with realistic addresses: first and last names in the
    usual shapes (ann.lee, annlee84, a.lee, lee_ann, ...), a few with capitals, over the big
    providers (gmail.com a third of them) and a long tail of ~3,000 other domains (example.org
    among them); statuses mixed (confirmed, pending, unsubscribed, bounced); half follow every
    tag, the rest one to three tags; daily or weekly; a dozen time zones; joined over three years;
  - a ledger of R digest runs (20), one a day, each of D deliveries (100,000) over the same pool of
    subscribers, mostly sent, some failed;
  - what came back from those runs: hard and soft bounces, complaints and unsubscribes, each an
    event attributed to its delivery; a hard bounce or a complaint also suppresses the address and
    changes the subscriber's status, and they drop out of later runs;
  - events and suppressions for the other unsubscribed and bounced subscribers.

The schema comes from tidings itself: the database must have been opened by tidings (any command
migrates it; with --tidings BIN this script runs `BIN subscriber list` on it first). Tidings'
triggers queue the rows for the search index, which the script then builds in one statement. Deterministic (--seed), Python 3
standard library only (sqlite3). Writes in one transaction with the journal off; refuses a
database that already has subscribers.

Usage: python3 scripts/seed_console.py DB [--subscribers N] [--runs R] [--deliveries D]
           [--seed S] [--tidings BIN]
Then, for PostgreSQL: TIDINGS_DATABASE_PATH=DB tidings migrate --to postgres://... (an empty
database); see the notes on the subscriber search benchmark.
"""

import argparse
import datetime as dt
import os
import random
import sqlite3
import subprocess
import sys
import time

FIRST = (
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara "
    "richard susan joseph jessica thomas sarah charles karen christopher nancy daniel lisa "
    "matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew "
    "donna joshua michelle kenneth dorothy kevin carol brian amanda george melissa edward deborah "
    "ronald stephanie timothy rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary "
    "amy nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin emma scott "
    "nicole brandon helen benjamin samantha samuel katherine gregory christine alexander debra "
    "frank rachel patrick carolyn raymond janet jack catherine dennis maria jerry heather tyler "
    "diane aaron ruth jose julie adam olivia henry joyce nathan virginia douglas victoria zachary "
    "kelly peter lauren kyle christina ethan joan walter evelyn noah judith jeremy megan "
    "christian andrea keith cheryl roger hannah terry jacqueline gerald martha harold gloria sean "
    "teresa austin ann carl sara arthur madison lawrence frances dylan kathryn jesse janice "
    "jordan jean bryan abigail billy alice joe julia bruce judy gabriel sophia logan grace albert "
    "denise willie amber alan doris juan marilyn wayne danielle elijah beverly randy isabella "
    "roy theresa vincent diana ralph natalie eugene brittany russell charlotte bobby marie mason "
    "kayla philip alexis louis lori joanne luca sofia matteo giulia lukas lena leon mia finn "
    "hanna jonas lea elias clara hugo chloe louis camille jules manon arthur ines yuki haruto "
    "aiko sota wei li priya arjun ananya rahul fatima omar amina yusuf chidi ngozi kwame abena "
    "mateo valentina santiago camila diego lucia pablo elena"
).split()
LAST = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen "
    "hill flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez "
    "phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy "
    "cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox "
    "ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes price "
    "alvarez castillo sanders patel myers long ross foster jimenez muller schmidt schneider "
    "fischer weber meyer wagner becker schulz hoffmann martin bernard dubois thomas robert "
    "richard petit durand leroy moreau rossi russo ferrari esposito bianchi romano colombo "
    "ricci sato suzuki takahashi tanaka watanabe wang li zhang liu chen yang huang zhao sharma "
    "singh kumar gupta okafor okonkwo mensah boateng silva santos oliveira souza costa pereira "
    "jansen devries bakker visser smit novak horvat kowalski nowak wisniewski andersen hansen "
    "nielsen larsen johansson karlsson nilsson virtanen korhonen oconnor murphy byrne kelly"
).split()
# A handful of names that almost nobody has: the "rare" searches find a few rows.
RARE_FIRST = ["quirinus", "zebulon", "ottoline"]

BIG_PROVIDERS = [
    ("gmail.com", 33.0), ("yahoo.com", 7.0), ("outlook.com", 6.0), ("hotmail.com", 5.0),
    ("icloud.com", 4.0), ("example.org", 1.5), ("proton.me", 1.5), ("gmx.de", 2.0),
    ("web.de", 1.5), ("orange.fr", 1.2), ("free.fr", 1.0), ("libero.it", 0.8), ("yandex.ru", 0.8),
    ("aol.com", 1.0), ("mail.com", 0.6), ("live.com", 1.2), ("btinternet.com", 0.6),
    ("comcast.net", 0.8), ("qq.com", 0.8), ("fastmail.com", 0.5), ("posteo.de", 0.3),
    ("example.com", 0.5), ("mail.example.org", 0.2),
]
TAIL_SHARE = 28.0   # percent of addresses at the long tail of other domains
SYLLABLES = (
    "al an ar be bo ca co da de di el en fa fi ga go ha he in ka ki la le li lo ma me mi mo na "
    "ne ni no or pa pe po ra re ri ro sa se si so ta te ti to ul va ve vi wa xe yo za ze"
).split()
TLDS = ["com", "com", "com", "org", "net", "io", "de", "fr", "co.uk", "nl", "es", "it", "ca", "edu"]
TAGS = [
    ("AI", "ai"), ("Open Science", "open-science"), ("Ethics", "ethics"), ("Climate", "climate"),
    ("Policy", "policy"), ("Rust", "rust"), ("Health", "health"), ("Books", "books"),
]
ZONES = [
    "UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York",
    "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Tokyo",
    "Asia/Kolkata", "Australia/Sydney", "Africa/Lagos",
]
STATUSES = [("confirmed", 78), ("pending", 6), ("unsubscribed", 12), ("bounced", 4)]

# What one delivery of a run leads to (the rest: sent, nothing came back).
P_FAILED = 0.002        # refused at send time (state failed)
P_HARD = 0.002          # a hard bounce later: bounced, suppressed
P_SOFT = 0.004          # a soft bounce: an event only
P_COMPLAINT = 0.0002    # a complaint: unsubscribed, suppressed
P_UNSUBSCRIBE = 0.0012  # an unsubscribe through the digest's link: unsubscribed

US = 1_000_000


def ts(us):
    """A time as tidings' subscriber rows keep it (RFC 3339, microseconds, Z)."""
    t = dt.datetime.fromtimestamp(us / US, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}Z"


def weighted(pairs):
    names = [p[0] for p in pairs]
    weights = [p[1] for p in pairs]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    return names, cum, total


def pick(rng, table):
    names, cum, total = table
    x = rng.random() * total
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return names[lo]


def domains(rng, n):
    out = set()
    while len(out) < n:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        out.add(f"{word}.{rng.choice(TLDS)}")
    return sorted(out)


def local_part(rng, first_table, last_table):
    first = pick(rng, first_table)
    last = pick(rng, last_table)
    shape = rng.random()
    if shape < 0.25:
        local = f"{first}.{last}"
    elif shape < 0.40:
        local = f"{first}{last}"
    elif shape < 0.52:
        local = f"{first[0]}{last}"
    elif shape < 0.60:
        local = f"{first}_{last}"
    elif shape < 0.75:
        local = f"{first}{last}{rng.randint(1, 99)}"
    elif shape < 0.82:
        local = f"{last}.{first}"
    elif shape < 0.92:
        local = f"{first}{rng.randint(60, 2010)}"
    else:
        local = f"{first}.{last}.{rng.randint(1, 9)}"
    if rng.random() < 0.03:
        local = ".".join(p.capitalize() for p in local.split("."))
    return local


def zipf_table(names, s=0.9):
    return weighted([(n, 1.0 / (i + 1) ** s) for i, n in enumerate(names)])


def check_schema(db, tidings):
    def tables():
        con = sqlite3.connect(db)
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()

    if not os.path.exists(db) or "subscriber_search_queue" not in tables():
        if not tidings:
            sys.exit(f"error: {db} has no tidings schema with the search index (migration 012): "
                     "open it with tidings first, or pass --tidings BIN")
        env = dict(os.environ, TIDINGS_DATABASE_PATH=db, TIDINGS_CATALOG_LOAD_SAMPLE="false")
        env.pop("TIDINGS_DATABASE_URL", None)
        subprocess.run([tidings, "subscriber", "list"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        if "subscriber_search_queue" not in tables():
            sys.exit(f"error: {tidings} did not create the search index in {db} (an older build?)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db")
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--deliveries", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=25)
    ap.add_argument("--tidings", help="a tidings binary to create the schema with")
    args = ap.parse_args()
    if args.deliveries > args.subscribers:
        sys.exit("error: --deliveries: at most --subscribers")
    check_schema(args.db, args.tidings)
    rng = random.Random(args.seed)
    started = time.monotonic()

    def say(what):
        print(f"[seed {time.monotonic() - started:6.1f} s] {what}", file=sys.stderr, flush=True)

    con = sqlite3.connect(args.db, isolation_level=None)
    if con.execute("SELECT count(*) FROM subscribers").fetchone()[0]:
        sys.exit(f"error: {args.db} already has subscribers; seed an empty database")
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -1000000")
    con.execute("PRAGMA foreign_keys = ON")

    # ------------------------------------------------------------------ subscribers, in memory
    now_us = int(time.time()) * US
    day = 86_400 * US
    first_us = now_us - 3 * 365 * day
    joined_until = now_us - (args.runs + 2) * day
    first_table = zipf_table(FIRST)
    last_table = zipf_table(LAST, 0.7)
    big = [(d, w) for d, w in BIG_PROVIDERS]
    tail = domains(rng, 3000)
    tail_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(tail))]
    tail_total = sum(tail_weights)
    big += [(d, TAIL_SHARE * w / tail_total) for d, w in zip(tail, tail_weights)]
    domain_table = weighted(big)
    status_table = weighted(STATUSES)
    n = args.subscribers
    seen = set()
    subs = []   # [email, status, cadence, zone, created_us, confirmed_us, unsub_us, tags, bounces]
    for i in range(n):
        while True:
            if rng.random() < 0.00002:
                local = f"{rng.choice(RARE_FIRST)}.{pick(rng, last_table)}"
            else:
                local = local_part(rng, first_table, last_table)
            email = f"{local}@{pick(rng, domain_table)}"
            if email.lower() not in seen:
                break
            email = f"{local}{rng.randint(100, 9999)}@{pick(rng, domain_table)}"
            if email.lower() not in seen:
                break
        seen.add(email.lower())
        created = first_us + (joined_until - first_us) * i // n + rng.randint(0, 10 * US)
        status = pick(rng, status_table)
        confirmed = created + rng.randint(60, 3 * 86_400) * US if status != "pending" else None
        unsub = None
        if status == "unsubscribed":
            unsub = confirmed + rng.randint(1, 600) * day
            unsub = min(unsub, now_us - day)
        tags = [] if rng.random() < 0.5 else rng.sample([s for _, s in TAGS], rng.randint(1, 3))
        subs.append([email, status, "daily" if rng.random() < 0.8 else "weekly",
                     rng.choice(ZONES), created, confirmed, unsub, tags,
                     3 if status == "bounced" else 0, None, None])
    del seen
    say(f"{n} subscribers made")

    # ------------------------------------------------------------------ history before the ledger
    events = []        # (at_us, email, sub_index, kind, bounce, source, detail, delivery_id)
    suppressed = {}    # lower email -> (reason, created_us)
    for i, s in enumerate(subs):
        if s[1] == "unsubscribed":
            events.append((s[6], s[0], i, "unsubscribe", None, "link", None, None))
        elif s[1] == "bounced":
            at = (s[5] or s[4]) + rng.randint(1, 300) * day
            events.append((at, s[0], i, "bounce", "hard", "smtp", "550 5.1.1 user unknown", None))
            suppressed[s[0].lower()] = ("bounces", at)
            events.append((at, s[0], i, "suppressed", None, "smtp", "bounces", None))
    # ------------------------------------------------------------------ runs, in memory
    pool = [i for i, s in enumerate(subs) if s[1] == "confirmed"]
    rng.shuffle(pool)
    pool = pool[: args.deliveries + args.deliveries // 10]
    pool.sort()
    runs = []          # (id, now_us, count)
    deliveries = []    # (id, run, sub_index, state, window_end, attempts, last_error, message_id, sent_us)
    delivery_id = 0
    for r in range(args.runs):
        run_id = r + 1
        run_us = now_us - (args.runs - r) * day
        active = [i for i in pool if subs[i][1] == "confirmed"][: args.deliveries]
        runs.append((run_id, run_us, len(active)))
        for i in active:
            delivery_id += 1
            s = subs[i]
            sent = run_us + rng.randint(1, 1800) * US
            mid = f"<digest.{run_id}.{delivery_id}.{rng.getrandbits(40):010x}@blog.example>"
            x = rng.random()
            if x < P_FAILED:
                deliveries.append((delivery_id, run_id, i, "failed", run_us, 1,
                                   "550 5.1.1 <" + s[0] + ">: Recipient address rejected",
                                   mid, None))
                s[8] += 1
                continue
            deliveries.append((delivery_id, run_id, i, "sent", run_us, 1, None, mid, sent))
            s[9] = run_us       # window start moves to the digest's end
            s[10] = run_us
            x -= P_FAILED
            later = sent + rng.randint(60, 36 * 3600) * US
            if x < P_HARD:
                events.append((later, s[0], i, "bounce", "hard", "dsn",
                               "5.1.1 mailbox unavailable", delivery_id))
                s[1] = "bounced"
                suppressed.setdefault(s[0].lower(), ("hard_bounce", later))
                events.append((later, s[0], i, "suppressed", None, "dsn", "hard_bounce", None))
            elif x < P_HARD + P_SOFT:
                events.append((later, s[0], i, "bounce", "soft", "dsn",
                               "4.2.2 mailbox full", delivery_id))
            elif x < P_HARD + P_SOFT + P_COMPLAINT:
                events.append((later, s[0], i, "complaint", None, "arf", None, delivery_id))
                s[1], s[6] = "unsubscribed", later
                suppressed.setdefault(s[0].lower(), ("complaint", later))
                events.append((later, s[0], i, "suppressed", None, "arf", "complaint", None))
            elif x < P_HARD + P_SOFT + P_COMPLAINT + P_UNSUBSCRIBE:
                source = "one_click" if rng.random() < 0.6 else "link"
                events.append((later, s[0], i, "unsubscribe", None, source, None, delivery_id))
                s[1], s[6] = "unsubscribed", later
    say(f"{len(runs)} runs, {len(deliveries)} deliveries, {len(events)} events in all")
    events.sort(key=lambda e: e[0])

    # ------------------------------------------------------------------ write
    con.execute("BEGIN")
    con.executemany("INSERT OR IGNORE INTO tags (slug, name) VALUES (?, ?)",
                    [(slug, name) for name, slug in TAGS])

    def subscriber_rows():
        for i, s in enumerate(subs):
            email, status, cadence, zone, created, confirmed, unsub, _tags, bounces, window, slot = s
            if window is None and confirmed is not None:
                window = confirmed
            yield (i + 1, email, status, cadence, zone, ts(created),
                   ts(confirmed) if confirmed is not None else None,
                   ts(unsub) if unsub is not None else None,
                   ts(confirmed + 60 * US) if confirmed is not None else None,
                   window, slot, bounces)

    con.executemany(
        "INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at, confirmed_at, "
        "unsubscribed_at, welcomed_at, window_start_us, last_slot_us, bounces) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", subscriber_rows())
    say("subscribers written")
    con.executemany("INSERT INTO subscriber_tags (subscriber_id, tag_slug) VALUES (?, ?)",
                    ((i + 1, t) for i, s in enumerate(subs) for t in s[7]))
    con.executemany(
        "INSERT INTO digest_runs (id, now_us, manual, subject, html, deliveries) "
        "VALUES (?, ?, 0, ?, ?, ?)",
        ((rid, at, f"Digest {ts(at)[:10]}",
          f"<html><body><h1>Digest {ts(at)[:10]}</h1><p>Eight new articles.</p></body></html>",
          count) for rid, at, count in runs))
    articles = "[" + ",".join(f'"{k}"' for k in range(1, 9)) + "]"
    con.executemany(
        "INSERT INTO deliveries (id, run_id, subscriber_id, state, window_end_us, articles, "
        "attempts, next_attempt_us, last_error, message_id, sent_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((d, r, i + 1, state, w, articles, a, w, err, mid, sent)
         for d, r, i, state, w, a, err, mid, sent in deliveries))
    say("ledger written")
    con.executemany(
        "INSERT INTO events (at_us, email, subscriber_id, kind, bounce, source, detail, delivery_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((at, email.lower(), i + 1, kind, bounce, source, detail, did)
         for at, email, i, kind, bounce, source, detail, did in events))
    con.executemany(
        "INSERT INTO suppressions (email, reason, note, created_us) VALUES (?, ?, NULL, ?)",
        ((email, reason, at) for email, (reason, at) in sorted(suppressed.items())))
    say("events and suppressions written")
    # What tidings keeps as it goes (migration 010): where each run's rows lie in the ledger (the
    # dashboard's runs chart reads the events about them by that range), and the per-day counters
    # of the subscribers chart: each event's kind, confirmations, and the confirmed total's changes.
    con.execute(
        "UPDATE digest_runs SET first_delivery_id = b.lo, last_delivery_id = b.hi "
        "FROM (SELECT run_id, min(id) AS lo, max(id) AS hi FROM deliveries GROUP BY run_id) AS b "
        "WHERE b.run_id = digest_runs.id")
    con.execute(
        "INSERT INTO daily_counts (counter, day, shard, n) "
        "SELECT kind, at_us / 86400000000, 0, count(*) FROM events GROUP BY kind, at_us / 86400000000")
    con.execute(
        "INSERT INTO daily_counts (counter, day, shard, n) "
        "SELECT 'confirmed', CAST(strftime('%s', confirmed_at) AS INTEGER) / 86400, 0, count(*) "
        "FROM subscribers WHERE confirmed_at IS NOT NULL GROUP BY 2")
    con.execute(
        "INSERT INTO daily_counts (counter, day, shard, n) "
        "SELECT 'confirmed_total', day, 0, sum(delta) FROM ("
        " SELECT CAST(strftime('%s', confirmed_at) AS INTEGER) / 86400 AS day, 1 AS delta "
        " FROM subscribers WHERE confirmed_at IS NOT NULL"
        " UNION ALL SELECT CAST(strftime('%s', coalesce(unsubscribed_at, confirmed_at)) AS INTEGER) / 86400, -1"
        " FROM subscribers WHERE confirmed_at IS NOT NULL AND status <> 'confirmed'"
        ") AS x GROUP BY day HAVING sum(delta) <> 0")
    say("run ranges and daily counters written")
    # The search index: tidings' triggers queued every subscriber; index them as
    # `subscribers::search::sync` does (which the daemon would otherwise do at the first search).
    con.execute("DELETE FROM subscriber_search WHERE rowid IN (SELECT id FROM subscriber_search_queue)")
    con.execute(
        "INSERT INTO subscriber_search (rowid, email, status, tags) "
        "SELECT s.id, s.email, ' ' || substr(s.status, 1, 1) || ' ', "
        "coalesce((SELECT ' ' || group_concat(t.tag_slug, ' ') || ' ' FROM subscriber_tags t "
        "WHERE t.subscriber_id = s.id), '') "
        "FROM subscriber_search_queue q JOIN subscribers s ON s.id = q.id")
    con.execute("DELETE FROM subscriber_search_queue")
    con.execute("COMMIT")
    say("search index made")
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    counts = {}
    for status in ("confirmed", "pending", "unsubscribed", "bounced"):
        counts[status] = sum(1 for s in subs if s[1] == status)
    say(f"done: {n} subscribers {counts}, {len(runs)} runs, {len(deliveries)} deliveries, "
        f"{len(events)} events, {len(suppressed)} suppressions")


if __name__ == "__main__":
    main()
