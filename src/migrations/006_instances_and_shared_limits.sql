-- Several processes (or nodes) share the queues: a claim's owner is a random instance id, drawn
-- at start, never a process id. The outbox records its owner too, so a worker can check that its
-- claim is still its own just before it sends.
ALTER TABLE outbox ADD COLUMN lease_owner INTEGER;

-- The per-address subscribe limit, kept where every node sees it (GCRA: the theoretical arrival
-- time of the next request, in microseconds).
CREATE TABLE address_limits (
    address TEXT PRIMARY KEY,                     -- lower-cased
    tat_us  INTEGER NOT NULL
) WITHOUT ROWID;
