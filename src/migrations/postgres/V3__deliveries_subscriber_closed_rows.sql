-- The ledger's index by subscriber covered every row, so each digest wrote an entry into it three
-- times: when planned, when claimed and when sent (on PostgreSQL an update that is not HOT adds an
-- entry to every index). Open rows are found by subscriber through `deliveries_open`; this index
-- now holds only the closed ones (sent, failed, skipped), which the bounce count reads and an
-- erasure deletes, so a digest writes it once (BENCHMARKS.md, "Larger groups and the recorder's
-- own connection on PostgreSQL"). SQLite keeps its full index: its foreign key's cascade looks
-- rows up through it.
DROP INDEX deliveries_subscriber;
CREATE INDEX deliveries_subscriber_closed ON deliveries (subscriber_id, id)
    WHERE state IN ('sent', 'failed', 'skipped');
