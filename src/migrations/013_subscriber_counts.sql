-- How many subscribers are in each status, kept as rows come, go and move, so that the console's
-- dashboard reads four rows instead of counting 1,000,000 (~45 ms of CPU here; BENCHMARKS.md,
-- "The console"). Written only by these triggers, which belong to the subscribers table's
-- owner, `subscribers::store`; exact, as each change is counted in the transaction that makes it.
CREATE TABLE subscriber_counts (
    status TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO subscriber_counts (status, n) SELECT status, count(*) FROM subscribers GROUP BY status;

CREATE TRIGGER subscriber_counts_added AFTER INSERT ON subscribers BEGIN
    INSERT INTO subscriber_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER subscriber_counts_removed AFTER DELETE ON subscribers BEGIN
    UPDATE subscriber_counts SET n = n - 1 WHERE status = old.status;
END;
-- Only a change of status is counted (not a digest's window, slot or bounce count).
CREATE TRIGGER subscriber_counts_moved AFTER UPDATE OF status ON subscribers
WHEN old.status IS NOT new.status BEGIN
    UPDATE subscriber_counts SET n = n - 1 WHERE status = old.status;
    INSERT INTO subscriber_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
