//! The catalog's SQL: articles, tags, the change journal and feed removal times, on either
//! backend. Called inside `Store::read` / `Store::write` (see `Catalog`), or by a caller that
//! already holds a transaction (a digest plan).

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

use super::{
    rfc3339, Article, ArticleInput, CatalogError, Changes, InputError, Tag, TagCount, Upserted,
};
use crate::params;
use crate::store::{Db, Error, Row};

mod batch;
mod tags;
pub use batch::upsert_many;
use batch::{
    check_id, dropped_tags, id_taken, insert_article, new_article, revised, update_article,
};
pub use tags::{tag, tag_count, tag_versioned, tag_versions_after, tags};

const ARTICLE_COLUMNS: &str =
    "a.seq, a.id, a.slug, a.title, a.url, a.summary, a.content_html, a.author, \
     a.image, a.reading_time_minutes, a.published_at, a.updated_at, a.added_us";

/// Held by every transaction that writes the journal, until it commits: journal ids then
/// commit in order on PostgreSQL too, so following `WHERE id > last` never skips a change.
pub const JOURNAL_LOCK: &str = "catalog journal";

fn micros(t: &DateTime<FixedOffset>) -> i64 {
    t.timestamp_micros()
}

/// Inserts the article, or updates the one with the same slug. Re-writing identical content
/// changes nothing; changed content keeps the id and moves `updated_at` forward.
pub fn upsert(
    db: &Db,
    input: &ArticleInput,
    now: DateTime<Utc>,
) -> Result<(Upserted, Article), CatalogError> {
    db.lock(JOURNAL_LOCK)?;
    let existing = find_by_slug(db, input.slug.as_str())?;
    // A tag keeps the name it was first given: compare (and answer) with that name, or an
    // article spelling it another way ("Explainable Ai") would count as changed every time.
    let tags = stored_tag_names(db, &input.tags)?;
    // Stored to the microsecond; keep the returned article equal to what a read gives back.
    let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    match existing {
        None => {
            let id = match &input.id {
                Some(id) => {
                    let owner: Option<String> = db.query_opt(
                        "SELECT slug FROM articles WHERE id = ?1",
                        params![id],
                        |r| r.get(0),
                    )?;
                    if let Some(owner) = owner {
                        return Err(id_taken(id, &owner).into());
                    }
                    id.clone()
                }
                None => format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            };
            let article = new_article(input, id, tags, now);
            let seq = insert_article(db, &article, input.quiet, now)?;
            write_tags(db, seq, &article)?;
            journal(db, now, article.tags.iter().map(|t| t.slug.as_str()))?;
            crate::webhook_endpoints::events::article_written(
                db,
                "article.published",
                &article,
                now,
            )?;
            Ok((Upserted::Created, article))
        }
        Some((seq, old)) => {
            check_id(input, &old)?;
            let new = revised(input, &old, tags, now);
            if new == old {
                return Ok((Upserted::Unchanged, old));
            }
            update_article(db, seq, &new)?;
            db.execute(
                "DELETE FROM article_tags WHERE article_seq = ?1",
                params![seq],
            )?;
            write_tags(db, seq, &new)?;
            let dropped = dropped_tags(&old, &new);
            record_removals(db, now, dropped.iter().copied())?;
            journal(
                db,
                now,
                new.tags
                    .iter()
                    .map(|t| t.slug.as_str())
                    .chain(dropped.iter().copied()),
            )?;
            crate::webhook_endpoints::events::article_written(db, "article.updated", &new, now)?;
            Ok((Upserted::Updated, new))
        }
    }
}

/// Removes the article with this slug; `false` if there was none.
pub fn remove(db: &Db, slug: &str, now: DateTime<Utc>) -> Result<bool, CatalogError> {
    db.lock(JOURNAL_LOCK)?;
    let Some((seq, old)) = find_by_slug(db, slug)? else {
        return Ok(false);
    };
    db.execute("DELETE FROM articles WHERE seq = ?1", params![seq])?;
    let tags: Vec<&str> = old.tags.iter().map(|t| t.slug.as_str()).collect();
    record_removals(db, now, std::iter::once("").chain(tags.iter().copied()))?;
    journal(db, now, tags.iter().copied())?;
    crate::webhook_endpoints::events::article_removed(db, &old, now)?;
    Ok(true)
}

pub fn get(db: &Db, slug: &str) -> Result<Option<Article>, Error> {
    Ok(find_by_slug(db, slug)?.map(|(_, a)| a))
}

pub fn count(db: &Db) -> Result<u64, Error> {
    Ok(db
        .query_row("SELECT count(*) FROM articles", &[], |r| r.get::<i64>(0))?
        .max(0) as u64)
}

/// Newest first (by publication date), optionally only one tag's articles.
pub fn newest(
    db: &Db,
    tag_slug: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<Article>, Error> {
    let mut rows = match tag_slug {
        None => db.query_map(
            &format!(
                "SELECT {ARTICLE_COLUMNS} FROM articles a \
                 ORDER BY a.published_us DESC, a.seq DESC LIMIT ?1 OFFSET ?2"
            ),
            params![limit, offset],
            read_article,
        )?,
        Some(tag) => db.query_map(
            &format!(
                "SELECT {ARTICLE_COLUMNS} FROM tags t \
                 JOIN article_tags at ON at.tag_id = t.id \
                 JOIN articles a ON a.seq = at.article_seq \
                 WHERE t.slug = ?1 \
                 ORDER BY at.published_us DESC, at.article_seq DESC LIMIT ?2 OFFSET ?3"
            ),
            params![tag, limit, offset],
            read_article,
        )?,
    };
    attach_tags(db, &mut rows)?;
    Ok(rows.into_iter().map(|(_, a)| a).collect())
}

/// A row's place in the catalog's order: `(published_us, seq)`.
pub type PageKey = (i64, i64);

/// A page of the catalog, newest first by publication, after the key `(published_us, seq)` of
/// the previous page's last row (keyset paging: a new article never shifts later pages). Each
/// with its key.
pub fn page(
    db: &Db,
    after: Option<PageKey>,
    limit: usize,
) -> Result<Vec<(PageKey, Article)>, Error> {
    let (published, seq) = after.unwrap_or((i64::MAX, i64::MAX));
    let mut keys = Vec::new();
    let mut rows = db.query_map(
        &format!(
            "SELECT {ARTICLE_COLUMNS}, a.published_us FROM articles a \
             WHERE a.published_us < ?1 OR (a.published_us = ?1 AND a.seq < ?2) \
             ORDER BY a.published_us DESC, a.seq DESC LIMIT ?3"
        ),
        params![published, seq, limit],
        |r| {
            let (seq, article) = read_article(r)?;
            keys.push((r.get::<i64>(13)?, seq));
            Ok((seq, article))
        },
    )?;
    attach_tags(db, &mut rows)?;
    Ok(keys
        .into_iter()
        .zip(rows)
        .map(|(key, (_, article))| (key, article))
        .collect())
}

/// `page` for the articles of one tag (its slug), through `article_tags_newest`.
pub fn page_tagged(
    db: &Db,
    tag_slug: &str,
    after: Option<PageKey>,
    limit: usize,
) -> Result<Vec<(PageKey, Article)>, Error> {
    let (published, seq) = after.unwrap_or((i64::MAX, i64::MAX));
    let mut keys = Vec::new();
    let mut rows = db.query_map(
        &format!(
            "SELECT {ARTICLE_COLUMNS}, at.published_us FROM tags t \
             JOIN article_tags at ON at.tag_id = t.id \
             JOIN articles a ON a.seq = at.article_seq \
             WHERE t.slug = ?1 AND (at.published_us < ?2 OR (at.published_us = ?2 AND at.article_seq < ?3)) \
             ORDER BY at.published_us DESC, at.article_seq DESC LIMIT ?4"
        ),
        params![tag_slug, published, seq, limit],
        |r| {
            let (seq, article) = read_article(r)?;
            keys.push((r.get::<i64>(13)?, seq));
            Ok((seq, article))
        },
    )?;
    attach_tags(db, &mut rows)?;
    Ok(keys
        .into_iter()
        .zip(rows)
        .map(|(key, (_, article))| (key, article))
        .collect())
}

/// How many articles the catalog holds, reading at most `at_most + 1`: `(n, true)` when there
/// are more than `at_most` (then `n` is `at_most`).
pub fn count_capped(db: &Db, at_most: u64) -> Result<(u64, bool), Error> {
    let n: i64 = db.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM articles LIMIT ?1) AS a",
        params![(at_most + 1) as i64],
        |r| r.get(0),
    )?;
    let n = n.max(0) as u64;
    Ok((n.min(at_most), n > at_most))
}

/// Articles that entered the catalog after `added_after` and were published at or after
/// `published_from`: the candidates for a digest run. A quiet article (a followed blog's back
/// catalogue) is never one.
pub fn added_since(
    db: &Db,
    added_after: DateTime<Utc>,
    published_from: DateTime<Utc>,
) -> Result<Vec<Article>, Error> {
    let mut rows = db.query_map(
        &format!(
            "SELECT {ARTICLE_COLUMNS} FROM articles a \
             WHERE a.added_us > ?1 AND a.published_us >= ?2 AND a.quiet = 0 ORDER BY a.published_us DESC, a.seq DESC"
        ),
        params![
            added_after.timestamp_micros(),
            published_from.timestamp_micros()
        ],
        read_article,
    )?;
    attach_tags(db, &mut rows)?;
    Ok(rows.into_iter().map(|(_, a)| a).collect())
}

/// The articles with these ids (those that still exist), in no particular order.
pub fn by_ids(db: &Db, ids: &[String]) -> Result<Vec<Article>, Error> {
    let mut rows: Vec<(i64, Article)> = Vec::with_capacity(ids.len());
    let sql = format!("SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.id = ?1");
    for id in ids {
        if let Some(row) = db.query_opt(&sql, params![id], read_article)? {
            rows.push(row);
        }
    }
    attach_tags(db, &mut rows)?;
    Ok(rows.into_iter().map(|(_, a)| a).collect())
}

/// When an article last left this feed (`""` = the site feeds).
pub fn last_removal(db: &Db, feed: &str) -> Result<Option<DateTime<FixedOffset>>, Error> {
    let at: Option<String> = db.query_opt(
        "SELECT at FROM feed_removals WHERE feed = ?1",
        params![feed],
        |r| r.get(0),
    )?;
    Ok(at.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()))
}

/// The newest entry in the change journal (0 when empty).
pub fn last_change(db: &Db) -> Result<i64, Error> {
    db.query_row(
        "SELECT coalesce(max(id), 0) FROM catalog_changes",
        &[],
        |r| r.get(0),
    )
}

/// The feeds touched by journal entries after `after`.
pub fn changes_since(db: &Db, after: i64) -> Result<Changes, Error> {
    let mut changes = Changes {
        last_id: after,
        ..Changes::default()
    };
    db.query_each(
        "SELECT id, tag_slugs FROM catalog_changes WHERE id > ?1 ORDER BY id",
        params![after],
        |r| -> Result<(), Error> {
            changes.any = true;
            changes.last_id = r.get(0)?;
            let slugs: String = r.get(1)?;
            if let Ok(list) = serde_json::from_str::<Vec<String>>(&slugs) {
                changes.tag_slugs.extend(list);
            }
            Ok(())
        },
    )?;
    Ok(changes)
}

/// Forgets journal entries older than a day; every node has long since followed them.
pub fn prune_journal(db: &Db, now: DateTime<Utc>) -> Result<usize, Error> {
    let cutoff = now.timestamp_micros() - 86_400_000_000;
    db.execute(
        "DELETE FROM catalog_changes WHERE at_us < ?1 AND id < (SELECT max(id) FROM catalog_changes)",
        params![cutoff],
    )
}

fn read_article(r: &Row) -> Result<(i64, Article), Error> {
    let time = |i: usize| -> Result<DateTime<FixedOffset>, Error> {
        let s: String = r.get(i)?;
        DateTime::parse_from_rfc3339(&s).map_err(|e| Error::Column {
            index: i,
            message: e.to_string(),
        })
    };
    let added_us: i64 = r.get(12)?;
    let minutes: Option<i64> = r.get(9)?;
    Ok((
        r.get(0)?,
        Article {
            id: r.get(1)?,
            slug: r.get(2)?,
            title: r.get(3)?,
            url: r.get(4)?,
            summary: r.get(5)?,
            content_html: r.get(6)?,
            author: r.get(7)?,
            image: r.get(8)?,
            reading_time_minutes: minutes.and_then(|m| u32::try_from(m).ok()),
            published_at: time(10)?,
            updated_at: time(11)?,
            added_at: DateTime::from_timestamp_micros(added_us).unwrap_or_default(),
            tags: Vec::new(),
        },
    ))
}

fn find_by_slug(db: &Db, slug: &str) -> Result<Option<(i64, Article)>, Error> {
    let found = db.query_opt(
        &format!("SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.slug = ?1"),
        params![slug],
        read_article,
    )?;
    match found {
        None => Ok(None),
        Some(row) => {
            let mut rows = vec![row];
            attach_tags(db, &mut rows)?;
            Ok(rows.pop())
        }
    }
}

/// Fills in each article's tags, in the article's order, with one query.
fn attach_tags(db: &Db, rows: &mut [(i64, Article)]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = rows.iter().map(|(s, _)| *s).collect();
    let mut by_seq: std::collections::HashMap<i64, Vec<Tag>> = std::collections::HashMap::new();
    for chunk in seqs.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = crate::store::sql::IdList::new(1, chunk);
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        let sql = format!(
            "SELECT at.article_seq, t.slug, t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id \
             WHERE at.article_seq IN ({}) ORDER BY at.article_seq, at.position",
            list.marks
        );
        db.query_each(&sql, &params, |r| -> Result<(), Error> {
            by_seq.entry(r.get(0)?).or_default().push(Tag {
                slug: r.get(1)?,
                name: r.get(2)?,
            });
            Ok(())
        })?;
    }
    for (seq, article) in rows.iter_mut() {
        article.tags = by_seq.remove(seq).unwrap_or_default();
    }
    Ok(())
}

/// `tags` with the display name each already has in the catalog (by slug); new ones as given.
fn stored_tag_names(db: &Db, tags: &[Tag]) -> Result<Vec<Tag>, Error> {
    tags.iter()
        .map(|t| {
            let name: Option<String> = db.query_opt(
                "SELECT name FROM tags WHERE slug = ?1",
                params![t.slug],
                |r| r.get(0),
            )?;
            Ok(Tag {
                slug: t.slug.clone(),
                name: name.unwrap_or_else(|| t.name.clone()),
            })
        })
        .collect()
}

fn write_tags(db: &Db, seq: i64, article: &Article) -> Result<(), Error> {
    for (position, tag) in article.tags.iter().enumerate() {
        db.execute(
            "INSERT INTO tags (slug, name) VALUES (?1, ?2) ON CONFLICT (slug) DO NOTHING",
            params![tag.slug, tag.name],
        )?;
        db.execute(
            "INSERT INTO article_tags (article_seq, tag_id, position, published_us) \
             SELECT ?1, id, ?2, ?3 FROM tags WHERE slug = ?4",
            params![seq, position, micros(&article.published_at), tag.slug],
        )?;
    }
    Ok(())
}

fn journal<'a>(
    db: &Db,
    now: DateTime<Utc>,
    tag_slugs: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    let slugs: BTreeSet<&str> = tag_slugs.collect();
    let json = serde_json::to_string(&slugs).unwrap_or_else(|_| "[]".into());
    db.execute(
        "INSERT INTO catalog_changes (at_us, tag_slugs) VALUES (?1, ?2)",
        params![now.timestamp_micros(), json],
    )?;
    if db.is_postgres() {
        // Wakes every node's publisher (delivered at commit; lost ones are caught up by the
        // journal when a node reconnects).
        db.execute("SELECT pg_notify('tidings_catalog', '')", &[])?;
    }
    Ok(())
}

fn record_removals<'a>(
    db: &Db,
    now: DateTime<Utc>,
    feeds: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    for feed in feeds {
        db.execute(
            "INSERT INTO feed_removals (feed, at, at_us) VALUES (?1, ?2, ?3) \
             ON CONFLICT (feed) DO UPDATE SET at = excluded.at, at_us = excluded.at_us",
            params![feed, at, now.timestamp_micros()],
        )?;
    }
    Ok(())
}
