-- The ledger's foreign keys cost more than the rows they guard. Planning a run inserts a row per
-- subscriber, and on PostgreSQL each foreign key is a trigger per row that looks up the parent
-- and locks it (FOR KEY SHARE, a write to the subscriber's row): for 100,000 deliveries 1.09 s
-- with both keys, 0.43 s without (BENCHMARKS.md, "PostgreSQL"). What they guarded holds without
-- them: a run's deliveries are written in the transaction that creates the run, and runs are
-- never deleted; `subscriber remove` deletes the subscriber's deliveries itself
-- (subscribers::store::delete), as the cascade did. SQLite keeps its keys: there a check is an
-- index probe in the same process.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_run_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscriber_id_fkey;
