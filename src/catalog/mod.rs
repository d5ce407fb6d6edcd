//! The article catalog: articles and tags in SQLite, written only through `Catalog::upsert` and
//! `Catalog::remove`, which also journal which feeds each change touched.

pub mod import;
pub mod input;
pub mod sample;

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

pub use input::{ArticleInput, ArticleJson, InputError};

/// A URL-safe article slug: letters, digits, `-`, `_`, `.`, `~`; never a `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > 200 {
            return Err("must be at most 200 characters".into());
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
        {
            return Err(format!(
                "'{s}' contains '{bad}'; use only letters, digits, '-', '_', '.' and '~'"
            ));
        }
        if s.starts_with('.') {
            return Err(format!("'{s}' must not start with '.'"));
        }
        Ok(Slug(s.to_string()))
    }

    /// `Open Science & You!` → `open-science-you`; `None` when nothing slug-worthy is left.
    pub fn from_title(title: &str) -> Option<Slug> {
        let s = slug::slugify(title);
        let s: String = s.chars().take(120).collect();
        let s = s.trim_end_matches('-').to_string();
        (!s.is_empty()).then_some(Slug(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: its display name and the slug used in URLs (`Open Science` → `open-science`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub slug: String,
    pub name: String,
}

impl Tag {
    pub fn parse(raw: &str) -> Result<Tag, String> {
        let name = input::one_line(raw);
        if name.is_empty() {
            return Err("a tag name must not be empty".into());
        }
        if name.chars().count() > 100 {
            return Err(format!("tag '{name}' is longer than 100 characters"));
        }
        let slug = slug::slugify(&name);
        if slug.is_empty() {
            return Err(format!(
                "tag '{name}' has no letters or digits to make a URL slug from"
            ));
        }
        Ok(Tag { slug, name })
    }
}

/// An article as stored in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub url: String,
    pub summary: String,
    pub content_html: String,
    pub author: Option<String>,
    pub image: Option<String>,
    pub reading_time_minutes: Option<u32>,
    pub published_at: DateTime<FixedOffset>,
    pub updated_at: DateTime<FixedOffset>,
    /// When the article entered the catalog.
    pub added_at: DateTime<Utc>,
    /// In the article's order; the first is the primary tag.
    pub tags: Vec<Tag>,
}

/// The JSON shape of an article in API answers: the input field names, plus `id`, `added_at`
/// and the tags' slugs.
#[derive(Debug, Serialize)]
pub struct ArticleView<'a> {
    pub id: &'a str,
    pub slug: &'a str,
    pub title: &'a str,
    pub url: &'a str,
    pub summary: &'a str,
    pub content_html: &'a str,
    pub author: Option<&'a str>,
    pub published_at: String,
    pub updated_at: String,
    pub added_at: String,
    pub tags: Vec<&'a str>,
    pub tag_slugs: Vec<&'a str>,
    pub image: Option<&'a str>,
    pub reading_time_minutes: Option<u32>,
}

impl Article {
    pub fn view(&self) -> ArticleView<'_> {
        ArticleView {
            id: &self.id,
            slug: &self.slug,
            title: &self.title,
            url: &self.url,
            summary: &self.summary,
            content_html: &self.content_html,
            author: self.author.as_deref(),
            published_at: rfc3339(&self.published_at),
            updated_at: rfc3339(&self.updated_at),
            added_at: self.added_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            tags: self.tags.iter().map(|t| t.name.as_str()).collect(),
            tag_slugs: self.tags.iter().map(|t| t.slug.as_str()).collect(),
            image: self.image.as_deref(),
            reading_time_minutes: self.reading_time_minutes,
        }
    }
}

pub fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// A tag with the number of articles carrying it.
#[derive(Debug, Clone, Serialize)]
pub struct TagCount {
    pub slug: String,
    pub name: String,
    pub articles: u64,
}

/// The feeds touched by catalog changes: the site feeds always, plus these tags' feeds.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub last_id: i64,
    pub any: bool,
    pub tag_slugs: BTreeSet<String>,
}

/// The catalog on one SQLite connection.
pub struct Catalog {
    conn: Connection,
}

const ARTICLE_COLUMNS: &str =
    "a.seq, a.id, a.slug, a.title, a.url, a.summary, a.content_html, a.author, \
     a.image, a.reading_time_minutes, a.published_at, a.updated_at, a.added_us";

fn micros(t: &DateTime<FixedOffset>) -> i64 {
    t.timestamp_micros()
}

impl Catalog {
    pub fn new(conn: Connection) -> Catalog {
        Catalog { conn }
    }

    pub fn open(path: &std::path::Path) -> Result<Catalog, crate::db::DbError> {
        Ok(Catalog::new(crate::db::open(path)?))
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Inserts the article, or updates the one with the same slug. Re-writing identical content
    /// changes nothing; changed content keeps the id and moves `updated_at` forward.
    pub fn upsert(
        &mut self,
        input: &ArticleInput,
        now: DateTime<Utc>,
    ) -> Result<(Upserted, Article), CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing = find_by_slug(&tx, input.slug.as_str())?;
        // A tag keeps the name it was first given: compare (and answer) with that name, or an
        // article spelling it another way ("Explainable Ai") would count as changed every time.
        let tags = stored_tag_names(&tx, &input.tags)?;
        // Stored to the microsecond; keep the returned article equal to what a read gives back.
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let now_fixed = now.fixed_offset();
        let (outcome, article) = match existing {
            None => {
                let id = match &input.id {
                    Some(id) => {
                        let owner: Option<String> = tx
                            .query_row("SELECT slug FROM articles WHERE id = ?1", [id], |r| {
                                r.get(0)
                            })
                            .optional()?;
                        if let Some(owner) = owner {
                            return Err(InputError::new(
                                "id",
                                format!(
                                    "'{id}' already belongs to the article with slug '{owner}'"
                                ),
                            )
                            .into());
                        }
                        id.clone()
                    }
                    None => format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                };
                let published_at = input.published_at.unwrap_or(now_fixed);
                let article = Article {
                    id,
                    slug: input.slug.as_str().to_string(),
                    title: input.title.clone(),
                    url: input.url.clone(),
                    summary: input.summary.clone(),
                    content_html: input.content_html.clone(),
                    author: input.author.clone(),
                    image: input.image.clone(),
                    reading_time_minutes: input.reading_time_minutes,
                    published_at,
                    updated_at: input.updated_at.unwrap_or(published_at),
                    added_at: now,
                    tags: tags.clone(),
                };
                tx.execute(
                    "INSERT INTO articles (id, slug, title, url, summary, content_html, author, image, \
                     reading_time_minutes, published_at, published_us, updated_at, updated_us, added_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    params![
                        article.id,
                        article.slug,
                        article.title,
                        article.url,
                        article.summary,
                        article.content_html,
                        article.author,
                        article.image,
                        article.reading_time_minutes,
                        rfc3339(&article.published_at),
                        micros(&article.published_at),
                        rfc3339(&article.updated_at),
                        micros(&article.updated_at),
                        now.timestamp_micros(),
                    ],
                )?;
                let seq = tx.last_insert_rowid();
                write_tags(&tx, seq, &article)?;
                journal(&tx, now, article.tags.iter().map(|t| t.slug.as_str()))?;
                (Upserted::Created, article)
            }
            Some((seq, old)) => {
                if let Some(id) = &input.id {
                    if *id != old.id {
                        return Err(InputError::new(
                            "id",
                            format!(
                                "the article with slug '{}' has id '{}'; ids never change",
                                old.slug, old.id
                            ),
                        )
                        .into());
                    }
                }
                let mut new = Article {
                    id: old.id.clone(),
                    slug: old.slug.clone(),
                    title: input.title.clone(),
                    url: input.url.clone(),
                    summary: input.summary.clone(),
                    content_html: input.content_html.clone(),
                    author: input.author.clone(),
                    image: input.image.clone(),
                    reading_time_minutes: input.reading_time_minutes,
                    published_at: input.published_at.unwrap_or(old.published_at),
                    updated_at: old.updated_at,
                    added_at: old.added_at,
                    tags: tags.clone(),
                };
                let content_changed = new != old;
                new.updated_at = match input.updated_at {
                    Some(u) if u > old.updated_at => u,
                    Some(u) if !content_changed => u,
                    _ if content_changed => now_fixed,
                    _ => old.updated_at,
                };
                if new == old {
                    tx.commit()?;
                    return Ok((Upserted::Unchanged, old));
                }
                tx.execute(
                    "UPDATE articles SET title = ?2, url = ?3, summary = ?4, content_html = ?5, author = ?6, \
                     image = ?7, reading_time_minutes = ?8, published_at = ?9, published_us = ?10, \
                     updated_at = ?11, updated_us = ?12 WHERE seq = ?1",
                    params![
                        seq,
                        new.title,
                        new.url,
                        new.summary,
                        new.content_html,
                        new.author,
                        new.image,
                        new.reading_time_minutes,
                        rfc3339(&new.published_at),
                        micros(&new.published_at),
                        rfc3339(&new.updated_at),
                        micros(&new.updated_at),
                    ],
                )?;
                tx.execute("DELETE FROM article_tags WHERE article_seq = ?1", [seq])?;
                write_tags(&tx, seq, &new)?;
                let dropped: Vec<&str> = old
                    .tags
                    .iter()
                    .filter(|t| !new.tags.iter().any(|n| n.slug == t.slug))
                    .map(|t| t.slug.as_str())
                    .collect();
                record_removals(&tx, now, dropped.iter().copied())?;
                journal(
                    &tx,
                    now,
                    new.tags
                        .iter()
                        .map(|t| t.slug.as_str())
                        .chain(dropped.iter().copied()),
                )?;
                (Upserted::Updated, new)
            }
        };
        tx.commit()?;
        Ok((outcome, article))
    }

    /// Removes the article with this slug; `false` if there was none.
    pub fn remove(&mut self, slug: &str, now: DateTime<Utc>) -> Result<bool, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some((seq, old)) = find_by_slug(&tx, slug)? else {
            return Ok(false);
        };
        tx.execute("DELETE FROM articles WHERE seq = ?1", [seq])?;
        let tags: Vec<&str> = old.tags.iter().map(|t| t.slug.as_str()).collect();
        record_removals(&tx, now, std::iter::once("").chain(tags.iter().copied()))?;
        journal(&tx, now, tags.iter().copied())?;
        tx.commit()?;
        Ok(true)
    }

    pub fn get(&self, slug: &str) -> Result<Option<Article>, CatalogError> {
        Ok(find_by_slug(&self.conn, slug)?.map(|(_, a)| a))
    }

    pub fn count(&self) -> Result<u64, CatalogError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM articles", [], |r| r.get::<_, i64>(0))?
            .max(0) as u64)
    }

    /// Newest first (by publication date), optionally only one tag's articles.
    pub fn newest(
        &self,
        tag_slug: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Article>, CatalogError> {
        let mut rows: Vec<(i64, Article)> = Vec::with_capacity(limit.min(1000));
        match tag_slug {
            None => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {ARTICLE_COLUMNS} FROM articles a \
                     ORDER BY a.published_us DESC, a.seq DESC LIMIT ?1 OFFSET ?2"
                ))?;
                let mapped = stmt.query_map(params![limit as i64, offset as i64], read_article)?;
                for r in mapped {
                    rows.push(r?);
                }
            }
            Some(tag) => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {ARTICLE_COLUMNS} FROM tags t \
                     JOIN article_tags at ON at.tag_id = t.id \
                     JOIN articles a ON a.seq = at.article_seq \
                     WHERE t.slug = ?1 \
                     ORDER BY at.published_us DESC, at.article_seq DESC LIMIT ?2 OFFSET ?3"
                ))?;
                let mapped =
                    stmt.query_map(params![tag, limit as i64, offset as i64], read_article)?;
                for r in mapped {
                    rows.push(r?);
                }
            }
        }
        attach_tags(&self.conn, &mut rows)?;
        Ok(rows.into_iter().map(|(_, a)| a).collect())
    }

    /// Articles that entered the catalog after `added_after` and were published at or after
    /// `published_from`: the candidates for a digest run.
    pub fn added_since(
        &self,
        added_after: DateTime<Utc>,
        published_from: DateTime<Utc>,
    ) -> Result<Vec<Article>, CatalogError> {
        added_since(&self.conn, added_after, published_from)
    }

    /// The articles with these ids (those that still exist), in no particular order.
    pub fn by_ids(&self, ids: &[String]) -> Result<Vec<Article>, CatalogError> {
        let mut rows: Vec<(i64, Article)> = Vec::with_capacity(ids.len());
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.id = ?1"
        ))?;
        for id in ids {
            if let Some(row) = stmt.query_row([id], read_article).optional()? {
                rows.push(row);
            }
        }
        attach_tags(&self.conn, &mut rows)?;
        Ok(rows.into_iter().map(|(_, a)| a).collect())
    }

    /// Every tag, in name order, with its article count (0 once its last article is gone).
    pub fn tags(&self) -> Result<Vec<TagCount>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.slug, t.name, (SELECT count(*) FROM article_tags at WHERE at.tag_id = t.id) \
             FROM tags t ORDER BY t.name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TagCount {
                slug: r.get(0)?,
                name: r.get(1)?,
                articles: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One tag with its article count (`tags` for every tag at once).
    pub fn tag_count(&self, slug: &str) -> Result<Option<TagCount>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.slug, t.name, (SELECT count(*) FROM article_tags at WHERE at.tag_id = t.id) \
             FROM tags t WHERE t.slug = ?1",
        )?;
        Ok(stmt
            .query_row([slug], |r| {
                Ok(TagCount {
                    slug: r.get(0)?,
                    name: r.get(1)?,
                    articles: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .optional()?)
    }

    pub fn tag(&self, slug: &str) -> Result<Option<Tag>, CatalogError> {
        Ok(self
            .conn
            .query_row("SELECT slug, name FROM tags WHERE slug = ?1", [slug], |r| {
                Ok(Tag {
                    slug: r.get(0)?,
                    name: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// When an article last left this feed (`""` = the site feeds).
    pub fn last_removal(&self, feed: &str) -> Result<Option<DateTime<FixedOffset>>, CatalogError> {
        let at: Option<String> = self
            .conn
            .query_row(
                "SELECT at FROM feed_removals WHERE feed = ?1",
                [feed],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()))
    }

    /// The newest entry in the change journal (0 when empty).
    pub fn last_change(&self) -> Result<i64, CatalogError> {
        Ok(self.conn.query_row(
            "SELECT coalesce(max(id), 0) FROM catalog_changes",
            [],
            |r| r.get(0),
        )?)
    }

    /// The feeds touched by journal entries after `after`.
    pub fn changes_since(&self, after: i64) -> Result<Changes, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, tag_slugs FROM catalog_changes WHERE id > ?1 ORDER BY id",
        )?;
        let mut changes = Changes {
            last_id: after,
            ..Changes::default()
        };
        let rows = stmt.query_map([after], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, slugs) = row?;
            changes.any = true;
            changes.last_id = id;
            if let Ok(list) = serde_json::from_str::<Vec<String>>(&slugs) {
                changes.tag_slugs.extend(list);
            }
        }
        Ok(changes)
    }

    /// Forgets journal entries older than a day; the daemon has long since followed them.
    pub fn prune_journal(&self, now: DateTime<Utc>) -> Result<usize, CatalogError> {
        let cutoff = now.timestamp_micros() - 86_400_000_000;
        Ok(self.conn.execute(
            "DELETE FROM catalog_changes WHERE at_us < ?1 AND id < (SELECT max(id) FROM catalog_changes)",
            [cutoff],
        )?)
    }

    /// `PRAGMA data_version`: changes whenever another connection commits.
    pub fn data_version(&self) -> Result<i64, CatalogError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

/// `Catalog::added_since` on any connection (a digest plan reads it inside its own transaction).
pub fn added_since(
    conn: &Connection,
    added_after: DateTime<Utc>,
    published_from: DateTime<Utc>,
) -> Result<Vec<Article>, CatalogError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ARTICLE_COLUMNS} FROM articles a \
         WHERE a.added_us > ?1 AND a.published_us >= ?2 ORDER BY a.published_us DESC, a.seq DESC"
    ))?;
    let mut rows: Vec<(i64, Article)> = stmt
        .query_map(
            params![
                added_after.timestamp_micros(),
                published_from.timestamp_micros()
            ],
            read_article,
        )?
        .collect::<Result<_, _>>()?;
    attach_tags(conn, &mut rows)?;
    Ok(rows.into_iter().map(|(_, a)| a).collect())
}

fn read_article(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Article)> {
    let time = |i: usize| -> rusqlite::Result<DateTime<FixedOffset>> {
        let s: String = r.get(i)?;
        DateTime::parse_from_rfc3339(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let added_us: i64 = r.get(12)?;
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
            reading_time_minutes: r.get(9)?,
            published_at: time(10)?,
            updated_at: time(11)?,
            added_at: DateTime::from_timestamp_micros(added_us).unwrap_or_default(),
            tags: Vec::new(),
        },
    ))
}

fn find_by_slug(conn: &Connection, slug: &str) -> rusqlite::Result<Option<(i64, Article)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.slug = ?1"
    ))?;
    let found = stmt.query_row([slug], read_article).optional()?;
    match found {
        None => Ok(None),
        Some(row) => {
            let mut rows = vec![row];
            attach_tags(conn, &mut rows)?;
            Ok(rows.pop())
        }
    }
}

/// Fills in each article's tags, in the article's order, with one query.
fn attach_tags(conn: &Connection, rows: &mut [(i64, Article)]) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let seqs: Vec<String> = rows.iter().map(|(s, _)| s.to_string()).collect();
    let sql = format!(
        "SELECT at.article_seq, t.slug, t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id \
         WHERE at.article_seq IN ({}) ORDER BY at.article_seq, at.position",
        seqs.join(",")
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut by_seq: std::collections::HashMap<i64, Vec<Tag>> = std::collections::HashMap::new();
    let tags = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            Tag {
                slug: r.get(1)?,
                name: r.get(2)?,
            },
        ))
    })?;
    for t in tags {
        let (seq, tag) = t?;
        by_seq.entry(seq).or_default().push(tag);
    }
    for (seq, article) in rows.iter_mut() {
        article.tags = by_seq.remove(seq).unwrap_or_default();
    }
    Ok(())
}

/// `tags` with the display name each already has in the catalog (by slug); new ones as given.
fn stored_tag_names(conn: &Connection, tags: &[Tag]) -> rusqlite::Result<Vec<Tag>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM tags WHERE slug = ?1")?;
    tags.iter()
        .map(|t| {
            let name: Option<String> = stmt.query_row([&t.slug], |r| r.get(0)).optional()?;
            Ok(Tag {
                slug: t.slug.clone(),
                name: name.unwrap_or_else(|| t.name.clone()),
            })
        })
        .collect()
}

fn write_tags(conn: &Connection, seq: i64, article: &Article) -> rusqlite::Result<()> {
    for (position, tag) in article.tags.iter().enumerate() {
        conn.execute(
            "INSERT INTO tags (slug, name) VALUES (?1, ?2) ON CONFLICT (slug) DO NOTHING",
            params![tag.slug, tag.name],
        )?;
        conn.execute(
            "INSERT INTO article_tags (article_seq, tag_id, position, published_us) \
             SELECT ?1, id, ?2, ?3 FROM tags WHERE slug = ?4",
            params![
                seq,
                position as i64,
                micros(&article.published_at),
                tag.slug
            ],
        )?;
    }
    Ok(())
}

fn journal<'a>(
    conn: &Connection,
    now: DateTime<Utc>,
    tag_slugs: impl Iterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    let slugs: BTreeSet<&str> = tag_slugs.collect();
    let json = serde_json::to_string(&slugs).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT INTO catalog_changes (at_us, tag_slugs) VALUES (?1, ?2)",
        params![now.timestamp_micros(), json],
    )?;
    Ok(())
}

fn record_removals<'a>(
    conn: &Connection,
    now: DateTime<Utc>,
    feeds: impl Iterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    for feed in feeds {
        conn.execute(
            "INSERT INTO feed_removals (feed, at, at_us) VALUES (?1, ?2, ?3) \
             ON CONFLICT (feed) DO UPDATE SET at = excluded.at, at_us = excluded.at_us",
            params![feed, at, now.timestamp_micros()],
        )?;
    }
    Ok(())
}

impl AsMut<Connection> for Catalog {
    fn as_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Catalog::open(&dir.path().join("t.db")).expect("open");
        (dir, c)
    }

    fn input(json: &str) -> ArticleInput {
        ArticleInput::parse(ArticleJson::from_json(json.as_bytes()).expect("json")).expect("valid")
    }

    #[test]
    fn reimporting_the_same_article_changes_nothing() {
        let (_d, mut c) = catalog();
        let a = input(
            r#"{"title":"Hello","url":"https://x.example/hello","tags":["AI","Open Science"],"published_at":"2026-05-27T09:00:00Z"}"#,
        );
        let (o1, first) = c.upsert(&a, Utc::now()).expect("insert");
        assert_eq!(o1, Upserted::Created);
        assert!(first.id.starts_with("urn:uuid:"));
        let before = c.last_change().expect("journal");
        let (o2, second) = c.upsert(&a, Utc::now()).expect("again");
        assert_eq!(o2, Upserted::Unchanged);
        assert_eq!(second, first);
        assert_eq!(c.last_change().expect("journal"), before);
    }

    #[test]
    fn changing_content_keeps_id_and_bumps_updated_at() {
        let (_d, mut c) = catalog();
        let a = input(
            r#"{"title":"Hello","url":"https://x.example/hello","published_at":"2026-05-27T09:00:00Z"}"#,
        );
        let (_, first) = c.upsert(&a, Utc::now()).expect("insert");
        let b = input(r#"{"slug":"hello","title":"Hello again","url":"https://x.example/hello"}"#);
        let (o, second) = c.upsert(&b, Utc::now()).expect("update");
        assert_eq!(o, Upserted::Updated);
        assert_eq!(second.id, first.id);
        assert_eq!(second.published_at, first.published_at);
        assert!(second.updated_at > first.updated_at);
    }

    #[test]
    fn tags_keep_their_order_and_slug() {
        let (_d, mut c) = catalog();
        let a = input(r#"{"title":"T","url":"https://x.example/t","tags":["Open Science","AI"]}"#);
        c.upsert(&a, Utc::now()).expect("insert");
        let got = c.get("t").expect("get").expect("exists");
        let slugs: Vec<&str> = got.tags.iter().map(|t| t.slug.as_str()).collect();
        assert_eq!(slugs, ["open-science", "ai"]);
        assert_eq!(got.tags[0].name, "Open Science");
        let in_tag = c.newest(Some("open-science"), 10, 0).expect("newest");
        assert_eq!(in_tag.len(), 1);
    }

    #[test]
    fn remove_records_when_feeds_lost_an_article() {
        let (_d, mut c) = catalog();
        let a = input(r#"{"title":"T","url":"https://x.example/t","tags":["AI"]}"#);
        c.upsert(&a, Utc::now()).expect("insert");
        assert!(c.remove("t", Utc::now()).expect("remove"));
        assert!(!c.remove("t", Utc::now()).expect("remove again"));
        assert!(c.last_removal("").expect("q").is_some());
        assert!(c.last_removal("ai").expect("q").is_some());
        assert_eq!(c.count().expect("count"), 0);
    }
}
