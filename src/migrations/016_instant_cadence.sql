-- The instant cadence: a subscriber may choose `instant` (a digest `digest.instant_delay_seconds`
-- after the first article new to them), and every instant send of one UTC day goes into one run.
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt the safe way
-- (https://www.sqlite.org/lang_altertable.html#otheralter). `db::open` runs the migrations with
-- foreign keys off (so dropping the old table cascades to nothing) and checks them after this
-- step. Ids are copied as they are, so the rows that name a subscriber (tags, tokens, the ledger,
-- the outbox, events, the search index by rowid) still name the same one; the table's counts
-- (`subscriber_counts`) are not touched, as the copy runs before the triggers are made again.
CREATE TABLE subscribers_instant (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,         -- local part as given, domain lower-cased
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    cadence         TEXT NOT NULL CHECK (cadence IN ('daily', 'weekly', 'instant')),
    time_zone       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    unsubscribed_at TEXT,
    welcomed_at     TEXT,                         -- the welcome email went out (at most once)
    window_start_us INTEGER,                      -- articles added after this are new to them
    last_slot_us    INTEGER,                      -- the last send slot (or instant plan) handled for them
    bounces         INTEGER NOT NULL DEFAULT 0    -- consecutive permanent failures
);
INSERT INTO subscribers_instant (id, email, status, cadence, time_zone, created_at, confirmed_at,
                                 unsubscribed_at, welcomed_at, window_start_us, last_slot_us, bounces)
    SELECT id, email, status, cadence, time_zone, created_at, confirmed_at,
           unsubscribed_at, welcomed_at, window_start_us, last_slot_us, bounces
    FROM subscribers;
DROP TABLE subscribers;
ALTER TABLE subscribers_instant RENAME TO subscribers;

CREATE INDEX subscribers_status ON subscribers (status);
CREATE INDEX subscribers_email_lower ON subscribers (lower(email));
-- The instant trigger reads only the instant subscribers (a few, often, among many).
CREATE INDEX subscribers_instant ON subscribers (id) WHERE cadence = 'instant';

-- The triggers of 012 (the search queue) and 013 (the counts), as they were.
CREATE TRIGGER subscriber_search_added AFTER INSERT ON subscribers BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (new.id);
END;
CREATE TRIGGER subscriber_search_removed AFTER DELETE ON subscribers BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (old.id);
END;
CREATE TRIGGER subscriber_search_changed AFTER UPDATE OF id, email, status ON subscribers BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (old.id);
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (new.id);
END;
CREATE TRIGGER subscriber_counts_added AFTER INSERT ON subscribers BEGIN
    INSERT INTO subscriber_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER subscriber_counts_removed AFTER DELETE ON subscribers BEGIN
    UPDATE subscriber_counts SET n = n - 1 WHERE status = old.status;
END;
CREATE TRIGGER subscriber_counts_moved AFTER UPDATE OF status ON subscribers
WHEN old.status IS NOT new.status BEGIN
    UPDATE subscriber_counts SET n = n - 1 WHERE status = old.status;
    INSERT INTO subscriber_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

-- The day's instant run: one per UTC day (days since 1970-01-01), reopened by each instant plan
-- of that day; NULL for scheduled and manual runs. `instant_closed_us`: when the day was over
-- and its run settled, `digest.run.finished` went out for it (once, whichever node saw it).
ALTER TABLE digest_runs ADD COLUMN instant_day INTEGER;
ALTER TABLE digest_runs ADD COLUMN instant_closed_us INTEGER;
CREATE UNIQUE INDEX digest_runs_instant_day ON digest_runs (instant_day);
