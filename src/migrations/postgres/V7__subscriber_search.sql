-- Finding subscribers by any part of their address (`gmail`, `@example.org`, `ann`): a GIN index
-- of the trigrams of the lower-cased address, which `lower(email) LIKE '%…%'` uses, and of the
-- status (through btree_gin), so that a search with a status filter is one scan of the index:
-- apart, the two bitmaps took 70 ms to intersect for `gmail` among the bounced of 1,000,000,
-- together 8 ms (BENCHMARKS.md, "Subscriber search"). Both extensions ship with PostgreSQL and
-- are trusted: the database's owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX subscribers_search ON subscribers USING gin (lower(email) gin_trgm_ops, status);
-- How often a pattern matches decides between walking the newest rows (`gmail`: a quarter of
-- the list) and the index (a rare name); with the default 100 histogram entries, a domain of 1.6%
-- of the list was estimated at 0.01%, and its first page took 86 ms instead of 4 ms.
ALTER INDEX subscribers_search ALTER COLUMN 1 SET STATISTICS 1000;

-- The tag filter, and bulk actions by tag: a tag's subscribers, newest first.
CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag_slug, subscriber_id);
