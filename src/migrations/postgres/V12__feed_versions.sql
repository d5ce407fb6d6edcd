-- A version for each tag's feeds, and what was last rendered for each feed (see the SQLite
-- migration 015_feed_versions.sql for the meaning of each column).
ALTER TABLE tags ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION catalog_changes_tag_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tags SET version = NEW.id
     WHERE slug IN (SELECT jsonb_array_elements_text(NEW.tag_slugs::jsonb));
    RETURN NULL;
END $$;
CREATE TRIGGER catalog_changes_tag_versions AFTER INSERT ON catalog_changes
    FOR EACH ROW EXECUTE FUNCTION catalog_changes_tag_versions();

CREATE TABLE feed_validators (
    feed            TEXT NOT NULL,
    format          TEXT NOT NULL,
    version         BIGINT NOT NULL,
    fingerprint     TEXT NOT NULL,
    etag            TEXT NOT NULL,
    last_modified_s BIGINT NOT NULL,
    length          BIGINT NOT NULL,
    PRIMARY KEY (feed, format)
);
