-- The feed audience (src/audience/), as SQLite's 011_audience.sql: days are whole days since
-- 1970-01-01 in UTC; `feed` is the feed's URL path.

-- The key that hashes (client address, User-Agent) pairs on `day`; deleted once its day is over.
CREATE TABLE audience_keys (
    day BIGINT PRIMARY KEY,
    key BYTEA NOT NULL
);

-- One row per distinct (client address, User-Agent) pair that read a feed on a day: its keyed
-- hash, never the address. Folded into audience_days.uniques two days later.
CREATE TABLE audience_uniques (
    day  BIGINT NOT NULL,
    feed TEXT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (day, feed, hash)
);

-- Per feed and day: folded uniques, and requests of readers not told apart (`overflow`).
CREATE TABLE audience_days (
    day      BIGINT NOT NULL,
    feed     TEXT NOT NULL,
    uniques  BIGINT NOT NULL DEFAULT 0,
    overflow BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, feed)
);

-- The latest count a hosted reader reported, per feed, service, feed id, day and suspicion.
CREATE TABLE audience_reported (
    day         BIGINT NOT NULL,
    feed        TEXT NOT NULL,
    service     TEXT NOT NULL,
    feed_id     TEXT NOT NULL,
    suspect     BIGINT NOT NULL,
    subscribers BIGINT NOT NULL,
    seen_us     BIGINT NOT NULL,
    PRIMARY KEY (day, feed, service, feed_id, suspect)
);
