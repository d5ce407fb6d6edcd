-- History that is complete from now on (issue 25). Subscribing and confirming are events too, and
-- an unsubscribe through a digest's link names its delivery. What happened before this upgrade is
-- rebuilt below from the timestamps the subscribers' rows kept, and marked approximate: those
-- rows kept only the last time of each change, and not where it came from.
ALTER TABLE events ADD COLUMN approximate INTEGER NOT NULL DEFAULT 0;

-- How many of each thing happened per UTC day, counted as it happens, so that a chart of a year
-- reads a few hundred rows whatever the size of the list: every event's kind, and
-- 'confirmed_total', the net change of the number of confirmed subscribers (written by
-- subscribers::store with every move into or out of confirmed). One row per counter, day and
-- writer: on PostgreSQL each connection adds to its own (shard = its backend pid), so no two
-- transactions wait on one row; SQLite has one writer (shard 0).
CREATE TABLE daily_counts (
    counter TEXT NOT NULL,
    day     INTEGER NOT NULL,                     -- days since 1970-01-01, UTC
    shard   INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (counter, day, shard)
) WITHOUT ROWID;

-- Where a run's deliveries lie in the ledger (ids are given out in order while the run is planned,
-- under the plan lock): one run's rows are read by id range, with no index by run to update on
-- every send.
ALTER TABLE digest_runs ADD COLUMN first_delivery_id INTEGER;
ALTER TABLE digest_runs ADD COLUMN last_delivery_id INTEGER;
UPDATE digest_runs SET first_delivery_id = b.lo, last_delivery_id = b.hi
FROM (SELECT run_id, min(id) AS lo, max(id) AS hi FROM deliveries GROUP BY run_id) AS b
WHERE b.run_id = digest_runs.id;
-- A run's failed, skipped and retried deliveries, for its counts and its list of failures. A digest
-- sent at the first try never enters this index.
CREATE INDEX deliveries_run_notable ON deliveries (run_id, state) WHERE state IN ('failed', 'skipped') OR attempts > 1;

-- The suppression list, newest first, paged by key.
CREATE INDEX suppressions_created ON suppressions (created_us, email);

-- The history before this upgrade, approximate. Times are TEXT (RFC 3339) in subscribers; a value
-- SQLite cannot read is left out rather than guessed.
INSERT INTO events (at_us, email, subscriber_id, kind, source, approximate)
SELECT CAST(strftime('%s', created_at) AS INTEGER) * 1000000 + CAST(substr(strftime('%f', created_at), 4) AS INTEGER) * 1000,
       lower(email), id, 'subscribed', 'unknown', 1
FROM subscribers WHERE strftime('%s', created_at) IS NOT NULL ORDER BY id;

INSERT INTO events (at_us, email, subscriber_id, kind, source, approximate)
SELECT CAST(strftime('%s', confirmed_at) AS INTEGER) * 1000000 + CAST(substr(strftime('%f', confirmed_at), 4) AS INTEGER) * 1000,
       lower(email), id, 'confirmed', 'unknown', 1
FROM subscribers WHERE strftime('%s', confirmed_at) IS NOT NULL ORDER BY id;

-- An unsubscribe already on record (since 005, with its source) is not repeated: the row keeps the
-- time of the last unsubscribe, which an event at or after it (within a second) is.
INSERT INTO events (at_us, email, subscriber_id, kind, source, approximate)
SELECT u.at_us, u.email, u.id, 'unsubscribe', 'unknown', 1
FROM (SELECT id, lower(email) AS email,
             CAST(strftime('%s', unsubscribed_at) AS INTEGER) * 1000000 + CAST(substr(strftime('%f', unsubscribed_at), 4) AS INTEGER) * 1000 AS at_us
      FROM subscribers WHERE strftime('%s', unsubscribed_at) IS NOT NULL) AS u
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.subscriber_id = u.id AND e.kind = 'unsubscribe' AND e.at_us >= u.at_us - 1000000)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.email = u.email AND e.kind = 'unsubscribe' AND e.at_us >= u.at_us - 1000000)
ORDER BY u.id;

-- Every event so far, counted by day.
INSERT INTO daily_counts (counter, day, shard, n)
SELECT kind, at_us / 86400000000, 0, count(*) FROM events GROUP BY kind, at_us / 86400000000;

-- The confirmed total's changes before this upgrade: a confirmation counts for the confirmed, and
-- for the unsubscribed, who left at their unsubscribe; for the bounced, who left at their last
-- bounce, complaint or suppression on record. (A bounced subscriber with none is left out: no
-- time to put the change at.) Summed, these give today's confirmed total.
WITH s AS (
    SELECT id, status,
           CAST(strftime('%s', confirmed_at) AS INTEGER) * 1000000 AS joined,
           CAST(strftime('%s', unsubscribed_at) AS INTEGER) * 1000000 AS unsubscribed
    FROM subscribers WHERE status IN ('confirmed', 'unsubscribed', 'bounced')),
moves AS (
    SELECT status, joined, CASE status
               WHEN 'unsubscribed' THEN unsubscribed
               WHEN 'bounced' THEN (SELECT max(b.at_us) FROM events b WHERE b.subscriber_id = s.id
                                    AND b.kind IN ('bounce', 'complaint', 'suppressed') AND b.at_us >= s.joined)
           END AS left_at
    FROM s WHERE joined IS NOT NULL)
INSERT INTO daily_counts (counter, day, shard, n)
SELECT 'confirmed_total', day, 0, sum(delta) FROM (
    SELECT joined / 86400000000 AS day, 1 AS delta FROM moves WHERE status = 'confirmed' OR left_at IS NOT NULL
    UNION ALL
    SELECT left_at / 86400000000, -1 FROM moves WHERE status <> 'confirmed' AND left_at IS NOT NULL
) AS x GROUP BY day HAVING sum(delta) <> 0;
