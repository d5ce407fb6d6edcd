-- The secret key sealed link tokens are made with (subscribers::tokens), created on first use.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- The ledger's work queues hold only unfinished deliveries: a digest that is sent leaves them,
-- rather than moving to a 'sent' part of one index that grows with every run.
DROP INDEX deliveries_todo;
CREATE INDEX deliveries_pending ON deliveries (next_attempt_us) WHERE state = 'pending';
CREATE INDEX deliveries_sending ON deliveries (lease_until_us) WHERE state = 'sending';
