-- History that is complete from now on (issue 25); see migrations/010_history.sql, which this
-- follows on PostgreSQL. Times in subscribers are TEXT (RFC 3339, as V1 made them): a value that
-- does not look like one is left out rather than guessed (a failed cast would stop the migration).
ALTER TABLE events ADD COLUMN approximate BIGINT NOT NULL DEFAULT 0;

CREATE TABLE daily_counts (
    counter TEXT NOT NULL,
    day     BIGINT NOT NULL,
    shard   BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (counter, day, shard)
);

ALTER TABLE digest_runs ADD COLUMN first_delivery_id BIGINT;
ALTER TABLE digest_runs ADD COLUMN last_delivery_id BIGINT;
UPDATE digest_runs SET first_delivery_id = b.lo, last_delivery_id = b.hi
FROM (SELECT run_id, min(id) AS lo, max(id) AS hi FROM deliveries GROUP BY run_id) AS b
WHERE b.run_id = digest_runs.id;
CREATE INDEX deliveries_run_notable ON deliveries (run_id, state) WHERE state IN ('failed', 'skipped') OR attempts > 1;

CREATE INDEX suppressions_created ON suppressions (created_us, email);

-- Microseconds since the epoch of an RFC 3339 text, or NULL.
CREATE FUNCTION pg_temp.history_us(t TEXT) RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$'
                THEN (extract(epoch FROM CAST(t AS timestamptz)) * 1000000)::bigint END
$$;

INSERT INTO events (at_us, email, subscriber_id, kind, source, approximate)
SELECT pg_temp.history_us(created_at), lower(email), id, 'subscribed', 'unknown', 1
FROM subscribers WHERE pg_temp.history_us(created_at) IS NOT NULL ORDER BY id;

INSERT INTO events (at_us, email, subscriber_id, kind, source, approximate)
SELECT pg_temp.history_us(confirmed_at), lower(email), id, 'confirmed', 'unknown', 1
FROM subscribers WHERE pg_temp.history_us(confirmed_at) IS NOT NULL ORDER BY id;

INSERT INTO events (at_us, email, subscriber_id, kind, source, approximate)
SELECT u.at_us, u.email, u.id, 'unsubscribe', 'unknown', 1
FROM (SELECT id, lower(email) AS email, pg_temp.history_us(unsubscribed_at) AS at_us
      FROM subscribers WHERE pg_temp.history_us(unsubscribed_at) IS NOT NULL) AS u
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.subscriber_id = u.id AND e.kind = 'unsubscribe' AND e.at_us >= u.at_us - 1000000)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.email = u.email AND e.kind = 'unsubscribe' AND e.at_us >= u.at_us - 1000000)
ORDER BY u.id;

INSERT INTO daily_counts (counter, day, shard, n)
SELECT kind, at_us / 86400000000, 0, count(*) FROM events GROUP BY kind, at_us / 86400000000;

WITH s AS (
    SELECT id, status, pg_temp.history_us(confirmed_at) AS joined,
           pg_temp.history_us(unsubscribed_at) AS unsubscribed
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

DROP FUNCTION pg_temp.history_us(TEXT);
