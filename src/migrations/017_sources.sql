-- Following blogs that live elsewhere (src/sources/): each followed feed, and each entry read
-- from it with the catalog article it became. Owned by `sources::store`.
--
-- articles.quiet belongs to the catalog: 1 for an article that is never new for a digest (a
-- followed blog's back catalogue, seeded by the first fetch, or an entry dated long before it
-- was first seen). It is in the feeds like any other.
ALTER TABLE articles ADD COLUMN quiet INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sources (
    id                INTEGER PRIMARY KEY,
    url               TEXT NOT NULL UNIQUE,          -- the feed, as last moved by permanent redirects
    added_url         TEXT NOT NULL,                 -- as the admin gave it
    slug              TEXT NOT NULL UNIQUE,          -- its articles' slugs start with it
    name              TEXT NOT NULL,
    tags              TEXT NOT NULL DEFAULT '[]',    -- JSON array of tag names given to every entry
    state             TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'active', 'gone')),
    identity          TEXT NOT NULL DEFAULT 'guid' CHECK (identity IN ('guid', 'link')),
    identity_note     TEXT,                          -- why identity is 'link'
    etag              TEXT,                          -- validators, stored after a parsed 200 only
    last_modified     TEXT,
    moved_to          TEXT,                          -- a permanent redirect seen on the last polls
    moved_seen        INTEGER NOT NULL DEFAULT 0,
    created_us        INTEGER NOT NULL,
    seeded_us         INTEGER,                       -- the first parsed fetch
    last_fetch_us     INTEGER,
    last_status       INTEGER,                       -- HTTP status of the last fetch (NULL: none)
    last_error        TEXT,
    last_success_us   INTEGER,
    errors            INTEGER NOT NULL DEFAULT 0,    -- failures in a row
    interval_s        INTEGER NOT NULL,              -- the regular interval, adapted to the feed
    next_fetch_us     INTEGER NOT NULL,
    lease_until_us    INTEGER,                       -- a node is fetching it until then
    hub               TEXT,                          -- WebSub hub the feed names
    topic             TEXT,                          -- the feed's self URL, for the hub
    websub_state      TEXT NOT NULL DEFAULT 'none',  -- none, subscribing, active, unsubscribing
    websub_secret     TEXT,                          -- hub.secret (HMAC needs it as it is)
    websub_lease_until_us INTEGER,
    websub_lease_seconds  INTEGER,                    -- as the hub granted it
    websub_renew_us       INTEGER                     -- when to ask the hub (again)
);
CREATE INDEX sources_due ON sources (next_fetch_us);

CREATE TABLE source_entries (
    id             INTEGER PRIMARY KEY,
    source_id      INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    guid           TEXT,
    link           TEXT,
    hash           TEXT NOT NULL,                    -- of title and content
    article_id     TEXT NOT NULL,                    -- the catalog article (urn:uuid:…)
    article_slug   TEXT NOT NULL,
    first_seen_us  INTEGER NOT NULL
);
CREATE INDEX source_entries_guid ON source_entries (source_id, guid);
CREATE INDEX source_entries_link ON source_entries (source_id, link);
CREATE INDEX source_entries_hash ON source_entries (source_id, hash);
