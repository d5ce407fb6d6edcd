-- Subscribers, their chosen tags, and single-purpose tokens (stored only as hashes).
CREATE TABLE subscribers (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,         -- local part as given, domain lower-cased
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    cadence         TEXT NOT NULL CHECK (cadence IN ('daily', 'weekly')),
    time_zone       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    unsubscribed_at TEXT,
    welcomed_at     TEXT                          -- the welcome email went out (at most once)
);
CREATE INDEX subscribers_status ON subscribers (status);

-- No rows = every tag.
CREATE TABLE subscriber_tags (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    tag_slug      TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, tag_slug)
) WITHOUT ROWID;

CREATE TABLE tokens (
    hash          BLOB PRIMARY KEY,               -- BLAKE3 of the token; the token itself is never stored
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    purpose       TEXT NOT NULL CHECK (purpose IN ('confirm', 'preferences', 'unsubscribe')),
    created_us    INTEGER NOT NULL,
    expires_us    INTEGER NOT NULL,
    used_us       INTEGER
) WITHOUT ROWID;
CREATE INDEX tokens_expiry ON tokens (expires_us);
