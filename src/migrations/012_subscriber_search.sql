-- Finding subscribers by any part of their address (`gmail`, `@example.org`, `ann`): an FTS5
-- index of trigrams (case-folded) over `subscribers.email`, kept in step by triggers. Its content
-- is the subscribers table itself (external content), so the addresses are not stored twice, and
-- the triggers need nothing newer than the SQLite that older tools on the same file link
-- (a contentless table with `contentless_delete` needs 3.43; Debian 12's sqlite3 and Python are
-- 3.40). `columnsize=0`: no ranking, so no per-row size table to write.
CREATE VIRTUAL TABLE subscriber_search USING fts5(
    email,
    content = 'subscribers',
    content_rowid = 'id',
    columnsize = 0,
    tokenize = 'trigram'
);
INSERT INTO subscriber_search (subscriber_search) VALUES ('rebuild');

CREATE TRIGGER subscriber_search_insert AFTER INSERT ON subscribers BEGIN
    INSERT INTO subscriber_search (rowid, email) VALUES (new.id, new.email);
END;
CREATE TRIGGER subscriber_search_delete AFTER DELETE ON subscribers BEGIN
    INSERT INTO subscriber_search (subscriber_search, rowid, email) VALUES ('delete', old.id, old.email);
END;
-- Only a change of address touches the index (not the status or digest window updates).
CREATE TRIGGER subscriber_search_update AFTER UPDATE OF id, email ON subscribers BEGIN
    INSERT INTO subscriber_search (subscriber_search, rowid, email) VALUES ('delete', old.id, old.email);
    INSERT INTO subscriber_search (rowid, email) VALUES (new.id, new.email);
END;

-- The tag filter, and bulk actions by tag: a tag's subscribers, newest first.
CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag_slug, subscriber_id);
