//! The catalog's tags as the feeds, the index and the API read them.

use super::*;

fn tag_count_row(r: &Row) -> Result<TagCount, Error> {
    Ok(TagCount {
        slug: r.get(0)?,
        name: r.get(1)?,
        articles: r.get::<i64>(2)?.max(0) as u64,
    })
}

/// Every tag, in name order (ASCII letters folded, as SQLite's NOCASE does, then byte order on
/// both backends), with its article count (0 once its last article is gone).
pub fn tags(db: &Db) -> Result<Vec<TagCount>, Error> {
    let mut tags = db.query_map(
        "SELECT t.slug, t.name, (SELECT count(*) FROM article_tags at WHERE at.tag_id = t.id) \
         FROM tags t",
        &[],
        tag_count_row,
    )?;
    // Sorted here, not by the database: PostgreSQL's collations have no twin of NOCASE, and the
    // feeds and pages must be the same bytes on either backend.
    tags.sort_by(|a, b| {
        a.name
            .to_ascii_lowercase()
            .cmp(&b.name.to_ascii_lowercase())
            .then_with(|| a.slug.cmp(&b.slug))
    });
    Ok(tags)
}

/// One tag with its article count (`tags` for every tag at once).
pub fn tag_count(db: &Db, slug: &str) -> Result<Option<TagCount>, Error> {
    db.query_opt(
        "SELECT t.slug, t.name, (SELECT count(*) FROM article_tags at WHERE at.tag_id = t.id) \
         FROM tags t WHERE t.slug = ?1",
        params![slug],
        tag_count_row,
    )
}

pub fn tag(db: &Db, slug: &str) -> Result<Option<Tag>, Error> {
    db.query_opt(
        "SELECT slug, name FROM tags WHERE slug = ?1",
        params![slug],
        |r| {
            Ok(Tag {
                slug: r.get(0)?,
                name: r.get(1)?,
            })
        },
    )
}

/// A tag with its feeds' version: the journal entry that last touched them (0 when none has since
/// versions were kept); a feed rendered at this version is current.
pub fn tag_versioned(db: &Db, slug: &str) -> Result<Option<(Tag, i64)>, Error> {
    db.query_opt(
        "SELECT slug, name, version FROM tags WHERE slug = ?1",
        params![slug],
        |r| {
            Ok((
                Tag {
                    slug: r.get(0)?,
                    name: r.get(1)?,
                },
                r.get(2)?,
            ))
        },
    )
}

/// Up to `limit` tags after the slug `after`, in slug order, with their feeds' versions (for a
/// pass over every tag a little at a time).
pub fn tag_versions_after(db: &Db, after: &str, limit: usize) -> Result<Vec<(String, i64)>, Error> {
    db.query_map(
        "SELECT slug, version FROM tags WHERE slug > ?1 ORDER BY slug LIMIT ?2",
        params![after, limit],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
