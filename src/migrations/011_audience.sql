-- The feed audience (src/audience/), counted the FeedPress way. Days are whole days since
-- 1970-01-01 in UTC; `feed` is the feed's URL path (`/feed.xml`, `/tags/ai/atom.xml`).

-- The key that hashes (client address, User-Agent) pairs on `day`: made by the first node that
-- needs it, shared by all, deleted once its day is over, so a hash cannot be traced back later.
CREATE TABLE audience_keys (
    day INTEGER PRIMARY KEY,
    key BLOB NOT NULL
);

-- One row per distinct (client address, User-Agent) pair that read a feed on a day: its keyed
-- hash, never the address. Nodes insert theirs and duplicates are ignored; two days later the
-- rows are folded into audience_days.uniques and deleted.
CREATE TABLE audience_uniques (
    day  INTEGER NOT NULL,
    feed TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (day, feed, hash)
) WITHOUT ROWID;

-- Per feed and day: the uniques folded from audience_uniques, and `overflow`, the requests of
-- readers a node could not tell apart (past its in-memory cap, or with no key for the day).
CREATE TABLE audience_days (
    day      INTEGER NOT NULL,
    feed     TEXT NOT NULL,
    uniques  INTEGER NOT NULL DEFAULT 0,
    overflow INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, feed)
) WITHOUT ROWID;

-- The latest count a hosted reader reported in its User-Agent, per feed, service, the service's
-- feed id and day. `suspect` (1) when the count was above audience.max_reported: kept and shown,
-- never added, and apart from the genuine count so that a forged one cannot displace it.
CREATE TABLE audience_reported (
    day         INTEGER NOT NULL,
    feed        TEXT NOT NULL,
    service     TEXT NOT NULL,
    feed_id     TEXT NOT NULL,
    suspect     INTEGER NOT NULL,
    subscribers INTEGER NOT NULL,
    seen_us     INTEGER NOT NULL,
    PRIMARY KEY (day, feed, service, feed_id, suspect)
) WITHOUT ROWID;
