-- Outgoing webhooks (Standard Webhooks v1), apart from the providers' incoming ones: the endpoints
-- events go to, one delivery per event and endpoint (written in the transaction of the change it
-- reports: the durable queue), and each attempt's answer. Owned by `webhook_endpoints::store`.
CREATE TABLE webhook_endpoints (
    id                INTEGER PRIMARY KEY,
    url               TEXT NOT NULL,
    event_types       TEXT NOT NULL DEFAULT '',      -- comma-separated; empty: every type
    secret            TEXT NOT NULL,                 -- whsec_…, kept as it is (HMAC needs it)
    previous_secret   TEXT,                          -- still signs until previous_until_us
    previous_until_us INTEGER,
    enabled           INTEGER NOT NULL DEFAULT 1,
    disabled_reason   TEXT,
    created_us        INTEGER NOT NULL,
    last_success_us   INTEGER,
    failing_since_us  INTEGER                        -- the first failure since the last success
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    endpoint_id     INTEGER NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL,                   -- webhook-id: the same on every attempt
    event_type      TEXT NOT NULL,
    subject         TEXT NOT NULL,                   -- what is kept in order (a subscriber)
    payload         TEXT NOT NULL,
    created_us      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending', -- pending, delivered, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    lease_owner     INTEGER,
    lease_until_us  INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    finished_us     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_us, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, subject, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at_us       INTEGER NOT NULL,
    status      INTEGER,                             -- the HTTP status; NULL when none came
    latency_us  INTEGER NOT NULL,
    response    TEXT                                 -- the first 1 KiB of the answer, or the error
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
