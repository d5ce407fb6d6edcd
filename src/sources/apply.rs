//! A read feed written to the catalog, in one transaction: each entry matched to what is known
//! of its source (guid, else link, else hash; by link when the feed repeats guids), known entries
//! updated, new ones added under `<source-slug>-<entry-slug>`, removed ones left removed.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use super::entries::{FeedEntry, ReadFeed};
use super::store::{self, Known, NewEntry, Source};
use crate::catalog::{self, ArticleInput, Slug, Upserted};
use crate::store::{Db, Error};

/// What one fetch changed.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Applied {
    /// Entries first seen now (added to the catalog).
    pub added: usize,
    /// Known entries whose article changed.
    pub updated: usize,
    pub unchanged: usize,
    /// Known entries whose article an admin removed: not brought back.
    pub removed_kept_out: usize,
    /// Entries the catalog refused, with why.
    pub rejected: Vec<String>,
    /// New entries added quiet: never new for a digest (the first fetch, or dated too long
    /// before they were seen).
    pub quiet: usize,
}

/// One entry on its way to the catalog.
struct Pending<'a> {
    entry: &'a FeedEntry,
    known: Option<Known>,
    input: ArticleInput,
}

/// Writes `feed`'s entries for `source` at `now`; articles dated more than `max_age` before
/// `now` are added quiet, as is everything on the source's first read.
pub fn apply(
    db: &Db,
    source: &Source,
    feed: &ReadFeed,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<Applied, Error> {
    // Two nodes reading one source write one after the other: the second sees the first's
    // entries as known.
    db.lock(&format!("source {}", source.id))?;
    let seeding = source.seeded_us.is_none();
    let by_link = source.identity == "link" || feed.repeated_guid.is_some();
    let mut applied = Applied::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut slugs: HashSet<String> = HashSet::new();
    let mut pending: Vec<Pending<'_>> = Vec::new();
    for entry in &feed.entries {
        let key = match (by_link, &entry.guid, &entry.link) {
            (true, _, Some(link)) | (false, None, Some(link)) => format!("l {link}"),
            (_, Some(guid), _) => format!("g {guid}"),
            (_, None, None) => format!("h {}", entry.hash),
        };
        if !seen.insert(key) {
            continue; // the same entry twice in one document: the first counts
        }
        let known = store::find_entry(
            db,
            source.id,
            entry.guid.as_deref(),
            entry.link.as_deref(),
            &entry.hash,
            by_link,
        )?;
        let (id, slug) = match &known {
            Some(k) => {
                // Removed by an admin (or its slug now someone else's): it stays out.
                match catalog::store::get(db, &k.article_slug)? {
                    Some(a) if a.id == k.article_id => {}
                    _ => {
                        applied.removed_kept_out += 1;
                        continue;
                    }
                }
                (k.article_id.clone(), k.article_slug.clone())
            }
            None => (
                format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                free_slug(db, source, entry, &mut slugs)?,
            ),
        };
        let mut json = entry.article.clone();
        json.id = Some(id);
        json.slug = Some(slug);
        let mut tags = json.tags.take().unwrap_or_default();
        for t in &source.tags {
            if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tags.push(t.clone());
            }
        }
        json.tags = Some(tags);
        match ArticleInput::parse(json) {
            Ok(mut input) => {
                if known.is_none() {
                    let old = entry.published.is_some_and(|p| p < now - max_age);
                    input.quiet = seeding || old;
                }
                pending.push(Pending {
                    entry,
                    known,
                    input,
                });
            }
            Err(e) => applied.rejected.push(format!(
                "{}: {e}",
                entry
                    .link
                    .as_deref()
                    .or(entry.guid.as_deref())
                    .unwrap_or("an entry")
            )),
        }
    }
    let inputs: Vec<ArticleInput> = pending.iter().map(|p| p.input.clone()).collect();
    let outcomes = catalog::store::upsert_many(db, &inputs, now)?;
    for (p, outcome) in pending.iter().zip(outcomes) {
        match outcome {
            Err(e) => applied.rejected.push(format!("{}: {e}", p.input.url)),
            Ok(upserted) => {
                match &p.known {
                    Some(k) => store::update_entry(
                        db,
                        k.id,
                        p.entry.guid.as_deref(),
                        p.entry.link.as_deref(),
                        &p.entry.hash,
                    )?,
                    None => store::insert_entry(
                        db,
                        &NewEntry {
                            source_id: source.id,
                            guid: p.entry.guid.as_deref(),
                            link: p.entry.link.as_deref(),
                            hash: &p.entry.hash,
                            article_id: p.input.id.as_deref().unwrap_or_default(),
                            article_slug: p.input.slug.as_str(),
                            now_us: now.timestamp_micros(),
                        },
                    )?,
                }
                match (upserted, &p.known) {
                    (_, None) => {
                        applied.added += 1;
                        applied.quiet += usize::from(p.input.quiet);
                    }
                    (Upserted::Unchanged, Some(_)) => applied.unchanged += 1,
                    (_, Some(_)) => applied.updated += 1,
                }
            }
        }
    }
    Ok(applied)
}

/// `<source-slug>-<entry-slug>`, with `-2`, `-3`, … when the catalog (or this fetch) has it.
fn free_slug(
    db: &Db,
    source: &Source,
    entry: &FeedEntry,
    taken: &mut HashSet<String>,
) -> Result<String, Error> {
    let own = entry
        .slug
        .clone()
        .unwrap_or_else(|| format!("entry-{}", &entry.hash[..12]));
    let mut base: String = format!("{}-{own}", source.slug);
    base.truncate(190);
    let base = base.trim_end_matches('-').to_string();
    let base = Slug::parse(&base)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("{}-entry-{}", source.slug, &entry.hash[..12]));
    let mut n = 1;
    loop {
        let candidate = match n {
            1 => base.clone(),
            _ => format!("{base}-{n}"),
        };
        if !taken.contains(&candidate) && catalog::store::get(db, &candidate)?.is_none() {
            taken.insert(candidate.clone());
            return Ok(candidate);
        }
        n += 1;
    }
}
