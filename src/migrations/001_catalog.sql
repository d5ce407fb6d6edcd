-- The article catalog. Times are kept twice: as written (RFC 3339 with its own offset, so feeds keep
-- the author's time zone) and as UTC microseconds for ordering.
CREATE TABLE articles (
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,      -- feed GUID / Atom id, minted once, never changed
    slug                 TEXT NOT NULL UNIQUE,
    title                TEXT NOT NULL,
    url                  TEXT NOT NULL,
    summary              TEXT NOT NULL DEFAULT '',
    content_html         TEXT NOT NULL DEFAULT '',
    author               TEXT,
    image                TEXT,
    reading_time_minutes INTEGER,
    published_at         TEXT NOT NULL,
    published_us         INTEGER NOT NULL,
    updated_at           TEXT NOT NULL,
    updated_us           INTEGER NOT NULL,
    added_us             INTEGER NOT NULL          -- when it entered the catalog
);
CREATE INDEX articles_newest ON articles (published_us DESC, seq DESC);
CREATE INDEX articles_added ON articles (added_us);

CREATE TABLE tags (
    id   INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL
);

-- position 0 is the primary tag; published_us is copied here so a tag's newest articles are one index range.
CREATE TABLE article_tags (
    article_seq  INTEGER NOT NULL REFERENCES articles (seq) ON DELETE CASCADE,
    tag_id       INTEGER NOT NULL REFERENCES tags (id),
    position     INTEGER NOT NULL,
    published_us INTEGER NOT NULL,
    PRIMARY KEY (article_seq, tag_id)
) WITHOUT ROWID;
CREATE INDEX article_tags_newest ON article_tags (tag_id, published_us DESC, article_seq DESC);

-- A journal of catalog changes: which feeds each write touched. The daemon follows it to rebuild only
-- those feeds, whether the write came from its own API or from the CLI in another process.
CREATE TABLE catalog_changes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us     INTEGER NOT NULL,
    tag_slugs TEXT NOT NULL                       -- JSON array of the tags whose feeds changed
);

-- When an article left a feed (removed, or a tag taken off it). Last-Modified is the newest of this
-- and the newest updated_at in the feed, so a removal is never hidden behind an older date.
CREATE TABLE feed_removals (
    feed     TEXT PRIMARY KEY,                    -- '' for the site feeds, else the tag slug
    at       TEXT NOT NULL,
    at_us    INTEGER NOT NULL
);
