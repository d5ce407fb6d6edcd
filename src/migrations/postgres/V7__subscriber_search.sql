-- Finding subscribers by any part of their address (`gmail`, `@example.org`, `ann`): a GIN index
-- of trigrams over the lower-cased address, which `lower(email) LIKE '%…%'` uses. pg_trgm ships
-- with PostgreSQL and is a trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX subscribers_email_trigrams ON subscribers USING gin (lower(email) gin_trgm_ops);

-- The tag filter, and bulk actions by tag: a tag's subscribers, newest first.
CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag_slug, subscriber_id);
