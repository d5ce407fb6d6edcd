-- Finding subscribers by any part of their address (`gmail`, `@example.org`, `ann`): an FTS5
-- index of trigrams (case-folded) of each subscriber's address, with their status and chosen
-- tags, so that a search with filters is one walk of the index. Checking each match's row
-- instead took 3.4 s of CPU to count `gmail` among the bounced of 1,000,000, and checking each
-- match's tags 30 ms for `gmail` and a tag (BENCHMARKS.md, "Subscriber search").
--   email  the address as stored;
--   status ' c ', ' p ', ' u ' or ' b ' (the status's first letter, which tells the four apart):
--          one token of its own, as no address holds a space;
--   tags   the chosen tag slugs between spaces (' ai rust '), '' for none.
-- The index keeps its own copy of these, so an entry can be replaced knowing only its rowid.
-- `columnsize=0`: no ranking, so no per-row size table to write.
CREATE VIRTUAL TABLE subscriber_search USING fts5(
    email,
    status,
    tags,
    columnsize = 0,
    tokenize = 'trigram'
);
INSERT INTO subscriber_search (rowid, email, status, tags)
    SELECT s.id, s.email, ' ' || substr(s.status, 1, 1) || ' ',
           coalesce((SELECT ' ' || group_concat(t.tag_slug, ' ') || ' ' FROM subscriber_tags t
                     WHERE t.subscriber_id = s.id), '')
    FROM subscribers s;

-- The subscribers whose entry is out of date; `subscribers::search::sync` re-indexes them in a
-- few statements (before a search, at the end of an import, in each batch of a bulk action).
-- Triggers write only here: FTS5 writes its pending changes to disk at each statement of a
-- transaction that touches it, so indexing from the triggers made `subscriber import` of
-- 100,000 rows take 7.2 s instead of 2.1 s; queued, 2.3 s, and the sync 0.46 s.
CREATE TABLE subscriber_search_queue (
    id INTEGER PRIMARY KEY                        -- a subscriber id (perhaps deleted since)
);
CREATE TRIGGER subscriber_search_added AFTER INSERT ON subscribers BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (new.id);
END;
CREATE TRIGGER subscriber_search_removed AFTER DELETE ON subscribers BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (old.id);
END;
-- Only a change of address or status is queued (not a digest's window, slot or bounce count).
CREATE TRIGGER subscriber_search_changed AFTER UPDATE OF id, email, status ON subscribers BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (old.id);
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (new.id);
END;
CREATE TRIGGER subscriber_search_tag_added AFTER INSERT ON subscriber_tags BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (new.subscriber_id);
END;
CREATE TRIGGER subscriber_search_tag_removed AFTER DELETE ON subscriber_tags BEGIN
    INSERT OR IGNORE INTO subscriber_search_queue (id) VALUES (old.subscriber_id);
END;

-- The tag filter alone, and bulk actions by tag: a tag's subscribers, newest first.
CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag_slug, subscriber_id);
