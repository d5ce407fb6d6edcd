-- A version for each tag's feeds, and what was last rendered for each feed, so that a feed's
-- ETag and Last-Modified can be checked without rendering it, and survive restarts and nodes.
--
-- tags.version: the catalog_changes entry that last touched the tag (0: none since this column
-- came). Kept by this trigger, which belongs to the catalog (the owner of both tables): every
-- write to the catalog records its touched tags in the journal, in the same transaction.
ALTER TABLE tags ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER catalog_changes_tag_versions AFTER INSERT ON catalog_changes BEGIN
    UPDATE tags SET version = new.id
     WHERE slug IN (SELECT value FROM json_each(new.tag_slugs));
END;

-- Written by the feeds (src/feeds/store.rs): one row per feed and format, as last rendered from
-- the catalog at `version` with settings whose digest is `fingerprint`. A row is current when
-- its version is the tag's and its fingerprint this build's.
CREATE TABLE feed_validators (
    feed            TEXT NOT NULL,                 -- '' for the site feeds, else the tag slug
    format          TEXT NOT NULL,                 -- 'rss', 'atom' or 'json'
    version         INTEGER NOT NULL,
    fingerprint     TEXT NOT NULL,
    etag            TEXT NOT NULL,                 -- the identity ETag, quoted ("-gz" for gzip)
    last_modified_s INTEGER NOT NULL,              -- Last-Modified, seconds since the epoch
    length          INTEGER NOT NULL,              -- bytes of the identity body
    PRIMARY KEY (feed, format)
) WITHOUT ROWID;
