-- Finding subscribers by any part of their address, by status and by tag, in one narrow table
-- kept by triggers, as SQLite's FTS5 table (migration 012) is: the lower-cased address, the
-- status and the chosen tags of each subscriber, with one GIN index over the three. The index on
-- `subscribers` (V7) had to recheck each match in the wide table, computing `lower(email)` per
-- row, and joined `subscriber_tags` for a tag: in psql on 1,000,000 subscribers, counting
-- `gmail` to 10,001 took 21 ms there and 3.6 ms here, `@example.org` 81 and 34, `gmail` with a
-- tag 170 and 30-43 (BENCHMARKS.md, "Subscriber search at the function").
-- Written only by these triggers, which belong to the owner of `subscribers` and
-- `subscriber_tags`, `subscribers::store`; read by `subscribers::search`.
CREATE TABLE subscriber_search (
    id     BIGINT PRIMARY KEY,                    -- subscribers.id
    email  TEXT NOT NULL,                         -- lower(subscribers.email)
    status TEXT NOT NULL,
    tags   TEXT[] NOT NULL DEFAULT '{}'           -- the chosen tags' slugs
);
INSERT INTO subscriber_search (id, email, status, tags)
SELECT s.id, lower(s.email), s.status,
       coalesce((SELECT array_agg(t.tag_slug ORDER BY t.tag_slug) FROM subscriber_tags t
                 WHERE t.subscriber_id = s.id), '{}')
FROM subscribers s;
CREATE INDEX subscriber_search_match ON subscriber_search USING gin (email gin_trgm_ops, status, tags);
-- Good estimates of how many rows a text matches pick between walking the newest rows (a
-- common text) and the index (a rare one).
ALTER TABLE subscriber_search ALTER COLUMN email SET STATISTICS 1000;
ANALYZE subscriber_search;
-- V7's index is not read any more.
DROP INDEX subscribers_search;

CREATE FUNCTION subscriber_search_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO subscriber_search (id, email, status) VALUES (NEW.id, lower(NEW.email), NEW.status);
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM subscriber_search WHERE id = OLD.id;
    ELSE
        UPDATE subscriber_search SET email = lower(NEW.email), status = NEW.status WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER subscriber_search_added_removed AFTER INSERT OR DELETE ON subscribers
    FOR EACH ROW EXECUTE FUNCTION subscriber_search_kept();
-- Only a change of address or status (not a digest's window, slot or bounce count).
CREATE TRIGGER subscriber_search_changed AFTER UPDATE OF email, status ON subscribers
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION subscriber_search_kept();

CREATE FUNCTION subscriber_search_tagged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE subscriber_search SET tags = array_append(tags, NEW.tag_slug)
        WHERE id = NEW.subscriber_id AND NOT (NEW.tag_slug = ANY (tags));
    ELSE
        UPDATE subscriber_search SET tags = array_remove(tags, OLD.tag_slug)
        WHERE id = OLD.subscriber_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER subscriber_search_tags AFTER INSERT OR DELETE ON subscriber_tags
    FOR EACH ROW EXECUTE FUNCTION subscriber_search_tagged();
