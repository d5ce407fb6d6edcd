-- How many subscribers are in each status, kept as rows come, go and move, so that the console's
-- dashboard reads a few rows instead of counting 1,000,000 (~95 ms here; BENCHMARKS.md, "The
-- console"). The triggers only append each move to `subscriber_count_moves`, and
-- `subscribers::store::counts_by_status` folds the moves into `subscriber_counts` when it reads:
-- adding to one row per status from every writer would make concurrent transactions wait on it,
-- and a bulk change of 100,000 rows in one statement would update the same row 100,000 times in
-- one transaction, which PostgreSQL does in quadratic time (measured: 10,000 in 1.4 s, 100,000 in
-- 163 s). Written only by these triggers and that fold, which belong to the subscribers table's
-- owner, `subscribers::store`; exact, as each move is written in the transaction that makes it.
CREATE TABLE subscriber_counts (
    status TEXT PRIMARY KEY,
    n      BIGINT NOT NULL
);
INSERT INTO subscriber_counts (status, n) SELECT status, count(*) FROM subscribers GROUP BY status;

CREATE TABLE subscriber_count_moves (
    status TEXT NOT NULL,
    n      INTEGER NOT NULL                       -- +1 or -1
);

CREATE FUNCTION subscriber_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO subscriber_count_moves (status, n) VALUES (OLD.status, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO subscriber_count_moves (status, n) VALUES (NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER subscriber_counts_added_removed AFTER INSERT OR DELETE ON subscribers
    FOR EACH ROW EXECUTE FUNCTION subscriber_count_moved();
-- Only a change of status is counted (not a digest's window, slot or bounce count).
CREATE TRIGGER subscriber_counts_moved AFTER UPDATE OF status ON subscribers
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION subscriber_count_moved();
