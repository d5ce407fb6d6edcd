-- Digests: where each subscriber's window starts, the last schedule slot handled for them, and a
-- delivery ledger that survives crashes.
ALTER TABLE subscribers ADD COLUMN window_start_us INTEGER;   -- articles added after this are new to them
ALTER TABLE subscribers ADD COLUMN last_slot_us INTEGER;      -- the last send slot a run handled for them
ALTER TABLE subscribers ADD COLUMN bounces INTEGER NOT NULL DEFAULT 0; -- consecutive permanent failures
UPDATE subscribers SET window_start_us = CAST(strftime('%s', confirmed_at) AS INTEGER) * 1000000
    WHERE confirmed_at IS NOT NULL;

CREATE TABLE digest_runs (
    id          INTEGER PRIMARY KEY,
    now_us      INTEGER NOT NULL,                 -- the moment the run was planned for
    manual      INTEGER NOT NULL,                 -- 1 for digest run --now / {"now": true}
    subject     TEXT NOT NULL,
    html        TEXT NOT NULL,                    -- the generic version (all tags), for /digests/{id}
    deliveries  INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES digest_runs (id),
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    window_end_us   INTEGER NOT NULL,             -- becomes the subscriber's window start once sent
    articles        TEXT NOT NULL,                -- JSON array of article ids, as planned
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    lease_owner     INTEGER,                      -- pid of the process sending it
    lease_until_us  INTEGER,
    last_error      TEXT,
    message_id      TEXT,
    sent_us         INTEGER
);
CREATE INDEX deliveries_todo ON deliveries (state, next_attempt_us);
-- At most one unfinished delivery per subscriber: a run never plans someone twice.
CREATE UNIQUE INDEX deliveries_open ON deliveries (subscriber_id) WHERE state IN ('pending', 'sending');
