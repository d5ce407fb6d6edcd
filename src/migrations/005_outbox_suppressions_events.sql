-- Single emails (confirmation, welcome) wait here until they are sent: what to send, never the
-- message or its token (the token is minted, and the message built, when it goes out).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    template        TEXT NOT NULL CHECK (template IN ('confirmation', 'welcome')),
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'dropped')),
    created_us      INTEGER NOT NULL,
    expires_us      INTEGER NOT NULL,             -- still queued then: dropped
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    lease_until_us  INTEGER,                      -- while 'sending': the claim lapses then
    last_error      TEXT,
    message_id      TEXT,
    finished_us     INTEGER
);
CREATE INDEX outbox_queued ON outbox (next_attempt_us) WHERE state = 'queued';
CREATE INDEX outbox_sending ON outbox (lease_until_us) WHERE state = 'sending';
CREATE INDEX outbox_subscriber ON outbox (subscriber_id);
CREATE INDEX deliveries_message ON deliveries (message_id) WHERE message_id IS NOT NULL;
-- A run paused because its sender looks blocked (a wave of 5.7.x bounces): its pending deliveries
-- wait (next_attempt_us far in the future) until `tidings digest resume`.
ALTER TABLE digest_runs ADD COLUMN paused_us INTEGER;
ALTER TABLE digest_runs ADD COLUMN paused_reason TEXT;
-- A subscriber's deliveries, newest first (bounce counting, webhook matching by recipient).
CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id, id);

-- Addresses no email of any kind goes to, keyed by the lower-cased address. Not tied to a
-- subscriber row, so an entry outlives `subscriber remove`.
CREATE TABLE suppressions (
    email      TEXT PRIMARY KEY,                  -- lower-cased
    reason     TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'soft_bounces', 'bounces', 'complaint', 'admin')),
    note       TEXT,
    created_us INTEGER NOT NULL
) WITHOUT ROWID;

-- What happened to a subscriber's mail and why their status changed: bounces, complaints,
-- unsubscribes, suppressions, dropped and failed single emails, ignored reports.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    at_us         INTEGER NOT NULL,
    email         TEXT,                           -- lower-cased; kept after the subscriber is removed
    subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
    kind          TEXT NOT NULL,
    bounce        TEXT,                           -- for kind 'bounce': hard, soft, policy, other
    source        TEXT NOT NULL,
    detail        TEXT,
    delivery_id   INTEGER,                        -- a digest ledger row
    outbox_id     INTEGER,                        -- a single email
    inbound_id    INTEGER                         -- the raw message it came from
);
CREATE INDEX events_email ON events (email, at_us);
CREATE INDEX events_subscriber ON events (subscriber_id, kind, at_us);
CREATE INDEX events_delivery ON events (delivery_id) WHERE delivery_id IS NOT NULL;

-- Messages that came back (bounces, complaints, mailto unsubscribes), kept raw for
-- mail.inbound.keep_days; what they were and what was done.
CREATE TABLE inbound_messages (
    id          INTEGER PRIMARY KEY,
    received_us INTEGER NOT NULL,
    mail_from   TEXT,
    rcpt_to     TEXT NOT NULL,                    -- the envelope recipients, comma-separated
    class       TEXT NOT NULL,                    -- dsn, complaint, unsubscribe, auto_reply, other
    outcome     TEXT NOT NULL,                    -- what was done, or why nothing
    size        INTEGER NOT NULL,
    raw         BLOB NOT NULL
);
CREATE INDEX inbound_received ON inbound_messages (received_us);

-- Provider webhook events already handled (SNS MessageId, Postmark ID, Mailgun token, SendGrid
-- sg_event_id): a replay changes nothing, across restarts.
CREATE TABLE webhook_seen (
    provider TEXT NOT NULL,
    id       TEXT NOT NULL,
    seen_us  INTEGER NOT NULL,
    PRIMARY KEY (provider, id)
) WITHOUT ROWID;

-- A suppression covers every spelling of an address.
CREATE INDEX subscribers_email_lower ON subscribers (lower(email));
