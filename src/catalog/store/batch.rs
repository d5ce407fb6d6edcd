//! Many articles written in one transaction (an import): what `upsert` does for each, in order,
//! with the catalog read once per batch and the tag links written in multi-row statements. On
//! PostgreSQL every statement is a round trip; this makes about one per article instead of ten.

use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::store::sql::{pow2_runs, ID_LIST_MAX};

/// `upsert` of each input in order, as if called one after another with the same `now`: an
/// input the catalog refuses gets its error and the others are still written. The journal gets
/// one entry for the batch, naming every tag the batch touched.
pub fn upsert_many(
    db: &Db,
    inputs: &[ArticleInput],
    now: DateTime<Utc>,
) -> Result<Vec<Result<Upserted, InputError>>, Error> {
    db.lock(JOURNAL_LOCK)?;
    let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let mut existing = articles_by_slug(db, inputs.iter().map(|i| i.slug.as_str()))?;
    let mut tag_ids = tags_by_slug(
        db,
        inputs
            .iter()
            .flat_map(|i| i.tags.iter().map(|t| t.slug.as_str())),
    )?;
    let mut owners = owners_by_id(db, inputs.iter().filter_map(|i| i.id.as_deref()))?;
    let mut links = Links::default();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(inputs.len());
    for input in inputs {
        // A tag keeps the name it was first given (see `upsert`), also by an earlier article
        // of this batch.
        let tags: Vec<Tag> = input
            .tags
            .iter()
            .map(|t| Tag {
                slug: t.slug.clone(),
                name: tag_ids
                    .get(&t.slug)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_else(|| t.name.clone()),
            })
            .collect();
        match existing.get(input.slug.as_str()) {
            None => {
                let id = match &input.id {
                    Some(id) => match owners.get(id) {
                        Some(owner) => {
                            outcomes.push(Err(id_taken(id, owner)));
                            continue;
                        }
                        None => id.clone(),
                    },
                    None => format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                };
                let article = new_article(input, id, tags, now);
                let seq = insert_article(db, &article, input.quiet, now)?;
                links.add(db, &mut tag_ids, seq, &article)?;
                touched.extend(article.tags.iter().map(|t| t.slug.clone()));
                crate::webhook_endpoints::events::article_written(
                    db,
                    "article.published",
                    &article,
                    now,
                )?;
                owners.insert(article.id.clone(), article.slug.clone());
                existing.insert(article.slug.clone(), (seq, article));
                outcomes.push(Ok(Upserted::Created));
            }
            Some((seq, old)) => {
                let seq = *seq;
                if let Err(e) = check_id(input, old) {
                    outcomes.push(Err(e));
                    continue;
                }
                let new = revised(input, old, tags, now);
                if new == *old {
                    outcomes.push(Ok(Upserted::Unchanged));
                    continue;
                }
                update_article(db, seq, &new)?;
                // Links queued for this article (an earlier entry of the batch) go first.
                links.flush(db)?;
                db.execute(
                    "DELETE FROM article_tags WHERE article_seq = ?1",
                    params![seq],
                )?;
                links.add(db, &mut tag_ids, seq, &new)?;
                let dropped: Vec<String> = dropped_tags(old, &new)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                record_removals(db, now, dropped.iter().map(String::as_str))?;
                touched.extend(new.tags.iter().map(|t| t.slug.clone()));
                touched.extend(dropped);
                crate::webhook_endpoints::events::article_written(
                    db,
                    "article.updated",
                    &new,
                    now,
                )?;
                existing.insert(new.slug.clone(), (seq, new));
                outcomes.push(Ok(Upserted::Updated));
            }
        }
    }
    links.flush(db)?;
    if outcomes
        .iter()
        .any(|o| matches!(o, Ok(Upserted::Created | Upserted::Updated)))
    {
        journal(db, now, touched.iter().map(String::as_str))?;
    }
    Ok(outcomes)
}

/// `article_tags` rows waiting to be written: `(article_seq, tag_id, position, published_us)`.
#[derive(Default)]
struct Links(Vec<(i64, i64, usize, i64)>);

/// Rows per multi-row `INSERT` (4 parameters each).
const LINKS_PER_STATEMENT: usize = 128;

impl Links {
    /// Queues the article's links, creating its new tags (which get their ids in order).
    fn add(
        &mut self,
        db: &Db,
        tag_ids: &mut HashMap<String, (i64, String)>,
        seq: i64,
        article: &Article,
    ) -> Result<(), Error> {
        for (position, tag) in article.tags.iter().enumerate() {
            let id = match tag_ids.get(&tag.slug) {
                Some((id, _)) => *id,
                None => {
                    db.execute(
                        "INSERT INTO tags (slug, name) VALUES (?1, ?2) ON CONFLICT (slug) DO NOTHING",
                        params![tag.slug, tag.name],
                    )?;
                    let (id, name): (i64, String) = db.query_row(
                        "SELECT id, name FROM tags WHERE slug = ?1",
                        params![tag.slug],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    tag_ids.insert(tag.slug.clone(), (id, name));
                    id
                }
            };
            self.0
                .push((seq, id, position, micros(&article.published_at)));
        }
        Ok(())
    }

    fn flush(&mut self, db: &Db) -> Result<(), Error> {
        for run in pow2_runs(&self.0, LINKS_PER_STATEMENT) {
            let marks: Vec<String> = (0..run.len())
                .map(|i| {
                    let n = 4 * i;
                    format!("(?{}, ?{}, ?{}, ?{})", n + 1, n + 2, n + 3, n + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO article_tags (article_seq, tag_id, position, published_us) VALUES {}",
                marks.join(", ")
            );
            let params: Vec<&dyn crate::store::Param> = run
                .iter()
                .flat_map(|(seq, tag, position, published)| {
                    [
                        seq as &dyn crate::store::Param,
                        tag as &dyn crate::store::Param,
                        position as &dyn crate::store::Param,
                        published as &dyn crate::store::Param,
                    ]
                })
                .collect();
            db.execute(&sql, &params)?;
        }
        self.0.clear();
        Ok(())
    }
}

/// Runs `sql` (which ends in `IN (` and has `?1..` free) for the distinct `keys`, in lists of a
/// few fixed lengths (padded with a repeated key) so that the statement texts are few.
fn for_each_in<'k, T>(
    db: &Db,
    sql: &str,
    keys: impl Iterator<Item = &'k str>,
    mut row: impl FnMut(&Row) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let keys: Vec<&str> = keys.collect::<BTreeSet<_>>().into_iter().collect();
    let mut out = Vec::new();
    for chunk in keys.chunks(ID_LIST_MAX) {
        let len = chunk.len().next_power_of_two();
        let mut padded = chunk.to_vec();
        padded.resize(len, chunk[chunk.len() - 1]);
        let marks: Vec<String> = (1..=len).map(|n| format!("?{n}")).collect();
        let params: Vec<&dyn crate::store::Param> = padded
            .iter()
            .map(|k| k as &dyn crate::store::Param)
            .collect();
        out.extend(db.query_map(&format!("{sql}{})", marks.join(", ")), &params, &mut row)?);
    }
    Ok(out)
}

/// The articles with these slugs, with their tags, by slug.
fn articles_by_slug<'k>(
    db: &Db,
    slugs: impl Iterator<Item = &'k str>,
) -> Result<HashMap<String, (i64, Article)>, Error> {
    let mut rows = for_each_in(
        db,
        &format!("SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.slug IN ("),
        slugs,
        read_article,
    )?;
    attach_tags(db, &mut rows)?;
    Ok(rows
        .into_iter()
        .map(|(seq, a)| (a.slug.clone(), (seq, a)))
        .collect())
}

/// The tags with these slugs: slug → (id, name).
fn tags_by_slug<'k>(
    db: &Db,
    slugs: impl Iterator<Item = &'k str>,
) -> Result<HashMap<String, (i64, String)>, Error> {
    Ok(for_each_in(
        db,
        "SELECT slug, id, name FROM tags WHERE slug IN (",
        slugs,
        |r| Ok((r.get::<String>(0)?, (r.get(1)?, r.get(2)?))),
    )?
    .into_iter()
    .collect())
}

/// The articles that hold these ids: id → slug.
fn owners_by_id<'k>(
    db: &Db,
    ids: impl Iterator<Item = &'k str>,
) -> Result<HashMap<String, String>, Error> {
    Ok(for_each_in(
        db,
        "SELECT id, slug FROM articles WHERE id IN (",
        ids,
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .into_iter()
    .collect())
}

pub(super) fn id_taken(id: &str, owner: &str) -> InputError {
    InputError::new(
        "id",
        format!("'{id}' already belongs to the article with slug '{owner}'"),
    )
}

/// An existing article's id never changes.
pub(super) fn check_id(input: &ArticleInput, old: &Article) -> Result<(), InputError> {
    match &input.id {
        Some(id) if *id != old.id => Err(InputError::new(
            "id",
            format!(
                "the article with slug '{}' has id '{}'; ids never change",
                old.slug, old.id
            ),
        )),
        _ => Ok(()),
    }
}

/// A new article from its input, its id and its tags (with their stored names).
pub(super) fn new_article(
    input: &ArticleInput,
    id: String,
    tags: Vec<Tag>,
    now: DateTime<Utc>,
) -> Article {
    let published_at = input.published_at.unwrap_or(now.fixed_offset());
    Article {
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
        tags,
    }
}

/// `old` as the input rewrites it: `updated_at` moves forward only when the content changed
/// (or the input says so); equal to `old` when nothing changed.
pub(super) fn revised(
    input: &ArticleInput,
    old: &Article,
    tags: Vec<Tag>,
    now: DateTime<Utc>,
) -> Article {
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
        tags,
    };
    let content_changed = new != *old;
    new.updated_at = match input.updated_at {
        Some(u) if u > old.updated_at => u,
        Some(u) if !content_changed => u,
        _ if content_changed => now.fixed_offset(),
        _ => old.updated_at,
    };
    new
}

/// The tags `old` had and `new` has not.
pub(super) fn dropped_tags<'a>(old: &'a Article, new: &Article) -> Vec<&'a str> {
    old.tags
        .iter()
        .filter(|t| !new.tags.iter().any(|n| n.slug == t.slug))
        .map(|t| t.slug.as_str())
        .collect()
}

/// Inserts the article's row (not its tags); its `seq`.
pub(super) fn insert_article(
    db: &Db,
    article: &Article,
    quiet: bool,
    now: DateTime<Utc>,
) -> Result<i64, Error> {
    db.query_row(
        "INSERT INTO articles (id, slug, title, url, summary, content_html, author, image, \
         reading_time_minutes, published_at, published_us, updated_at, updated_us, added_us, \
         quiet) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING seq",
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
            i64::from(quiet),
        ],
        |r| r.get(0),
    )
}

/// Rewrites the article's row (not its tags).
pub(super) fn update_article(db: &Db, seq: i64, new: &Article) -> Result<(), Error> {
    db.execute(
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
    Ok(())
}
