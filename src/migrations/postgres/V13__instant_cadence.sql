-- The instant cadence (see the SQLite migration 016_instant_cadence.sql): `instant` is a
-- cadence, the instant trigger reads the instant subscribers through their own index, and the
-- instant sends of one UTC day share one run.
ALTER TABLE subscribers DROP CONSTRAINT subscribers_cadence_check;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_cadence_check
    CHECK (cadence IN ('daily', 'weekly', 'instant'));
CREATE INDEX subscribers_instant ON subscribers (id) WHERE cadence = 'instant';

ALTER TABLE digest_runs ADD COLUMN instant_day BIGINT;
ALTER TABLE digest_runs ADD COLUMN instant_closed_us BIGINT;
CREATE UNIQUE INDEX digest_runs_instant_day ON digest_runs (instant_day);
