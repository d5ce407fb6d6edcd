//! The SQL of followed blogs: `sources` (each feed and how its polls went) and `source_entries`
//! (each entry read from it, with the catalog article it became). Only this module touches them.

use crate::params;
use crate::store::{Db, Error, Row};

type Result<T, E = Error> = std::result::Result<T, E>;

/// A followed feed, as the API, the CLI and the console show it (never its WebSub secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Source {
    pub id: i64,
    /// The feed's URL, as moved by permanent redirects.
    pub url: String,
    /// The URL as it was added.
    pub added_url: String,
    /// Its articles' slugs start with `<slug>-`.
    pub slug: String,
    pub name: String,
    /// Given to every entry, beside the feed's own categories.
    pub tags: Vec<String>,
    /// `new` (not read yet), `active`, or `gone` (the server said `410`: no more polls).
    pub state: String,
    /// `guid`, or `link` when the feed gave one guid to different links.
    pub identity: String,
    pub identity_note: Option<String>,
    /// Where permanent redirects lead, and on how many polls in a row (the URL moves at 3).
    pub moved_to: Option<String>,
    pub moved_seen: i64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub created_us: i64,
    /// The first fetch that was read: what it found was added without mailing anyone.
    pub seeded_us: Option<i64>,
    pub last_fetch_us: Option<i64>,
    /// The HTTP status of the last fetch (none when it got no answer).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_success_us: Option<i64>,
    /// Failures in a row.
    pub errors: i64,
    /// The regular interval between polls, in seconds.
    pub interval_s: i64,
    pub next_fetch_us: i64,
    /// The WebSub hub the feed names, and the state of tidings' subscription to it.
    pub hub: Option<String>,
    pub websub_state: String,
    pub websub_lease_until_us: Option<i64>,
    /// When tidings asks the hub (again): a renewal, or a retry.
    pub websub_renew_us: Option<i64>,
    /// Entries read from it so far.
    pub entries: i64,
}

const COLUMNS: &str = "s.id, s.url, s.added_url, s.slug, s.name, s.tags, s.state, s.identity, \
     s.identity_note, s.etag, s.last_modified, s.created_us, s.seeded_us, s.last_fetch_us, \
     s.last_status, s.last_error, s.last_success_us, s.errors, s.interval_s, s.next_fetch_us, \
     s.hub, s.websub_state, s.websub_lease_until_us, s.moved_to, s.moved_seen, \
     s.websub_renew_us, \
     (SELECT COUNT(*) FROM source_entries e WHERE e.source_id = s.id)";

fn read_source(r: &Row) -> Result<Source> {
    let tags: String = r.get(5)?;
    Ok(Source {
        id: r.get(0)?,
        url: r.get(1)?,
        added_url: r.get(2)?,
        slug: r.get(3)?,
        name: r.get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        state: r.get(6)?,
        identity: r.get(7)?,
        identity_note: r.get(8)?,
        etag: r.get(9)?,
        last_modified: r.get(10)?,
        created_us: r.get(11)?,
        seeded_us: r.get(12)?,
        last_fetch_us: r.get(13)?,
        last_status: r.get(14)?,
        last_error: r.get(15)?,
        last_success_us: r.get(16)?,
        errors: r.get(17)?,
        interval_s: r.get(18)?,
        next_fetch_us: r.get(19)?,
        hub: r.get(20)?,
        websub_state: r.get(21)?,
        websub_lease_until_us: r.get(22)?,
        moved_to: r.get(23)?,
        moved_seen: r.get(24)?,
        websub_renew_us: r.get(25)?,
        entries: r.get(26)?,
    })
}

/// A source to add.
pub struct NewSource<'a> {
    pub url: &'a str,
    pub slug: &'a str,
    pub name: &'a str,
    pub tags: &'a [String],
    pub interval_s: i64,
    pub now_us: i64,
}

/// Adds a source, due at once; `None` when one with this URL exists.
pub fn insert(db: &Db, new: &NewSource<'_>) -> Result<Option<i64>> {
    let tags = serde_json::to_string(new.tags).unwrap_or_else(|_| "[]".into());
    db.query_opt(
        "INSERT INTO sources (url, added_url, slug, name, tags, created_us, interval_s, \
         next_fetch_us) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?5) \
         ON CONFLICT (url) DO NOTHING RETURNING id",
        params![
            new.url,
            new.slug,
            new.name,
            tags,
            new.now_us,
            new.interval_s
        ],
        |r| r.get(0),
    )
}

/// Whether a source already has this slug.
pub fn slug_taken(db: &Db, slug: &str) -> Result<bool> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM sources WHERE slug = ?1",
            params![slug],
            |r| r.get::<i64>(0),
        )?
        .is_some())
}

pub fn get(db: &Db, id: i64) -> Result<Option<Source>> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM sources s WHERE s.id = ?1"),
        params![id],
        read_source,
    )
}

/// Every source, by id.
pub fn list(db: &Db) -> Result<Vec<Source>> {
    db.query_map(
        &format!("SELECT {COLUMNS} FROM sources s ORDER BY s.id"),
        params![],
        read_source,
    )
}

/// Up to `limit` sources after id `after`, by id: one page of the console's list.
pub fn page(db: &Db, after: Option<i64>, limit: usize) -> Result<Vec<Source>> {
    db.query_map(
        &format!("SELECT {COLUMNS} FROM sources s WHERE s.id > ?1 ORDER BY s.id LIMIT ?2"),
        params![after.unwrap_or(i64::MIN), limit as i64],
        read_source,
    )
}

/// Removes a source and what is known of its entries (their articles stay in the catalog).
pub fn delete(db: &Db, id: i64) -> Result<bool> {
    db.execute(
        "DELETE FROM source_entries WHERE source_id = ?1",
        params![id],
    )?;
    Ok(db.execute("DELETE FROM sources WHERE id = ?1", params![id])? > 0)
}

/// Takes up to `limit` sources due at `now_us` for this node until `lease_until_us`: another
/// node (or tick) does not take them meanwhile.
pub fn claim_due(db: &Db, now_us: i64, lease_until_us: i64, limit: usize) -> Result<Vec<i64>> {
    let ids: Vec<i64> = db.query_map(
        "SELECT id FROM sources WHERE next_fetch_us <= ?1 AND state <> 'gone' \
         AND (lease_until_us IS NULL OR lease_until_us <= ?1) ORDER BY next_fetch_us LIMIT ?2",
        params![now_us, limit as i64],
        |r| r.get(0),
    )?;
    let mut taken = Vec::with_capacity(ids.len());
    for id in ids {
        if claim(db, id, now_us, lease_until_us, false)? {
            taken.push(id);
        }
    }
    Ok(taken)
}

/// Takes one source (due or, with `any_time`, not) until `lease_until_us`; `false` when it is
/// gone or another fetch holds it.
pub fn claim(db: &Db, id: i64, now_us: i64, lease_until_us: i64, any_time: bool) -> Result<bool> {
    Ok(db.execute(
        "UPDATE sources SET lease_until_us = ?3 WHERE id = ?1 \
         AND (lease_until_us IS NULL OR lease_until_us <= ?2) \
         AND (?4 = 1 OR (next_fetch_us <= ?2 AND state <> 'gone'))",
        params![id, now_us, lease_until_us, any_time],
    )? > 0)
}

/// The earliest next fetch of any source that will be polled again.
pub fn next_due(db: &Db) -> Result<Option<i64>> {
    db.query_row(
        "SELECT MIN(next_fetch_us) FROM sources WHERE state <> 'gone'",
        params![],
        |r| r.get(0),
    )
}

/// How a fetch ended, to be written to its source.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub at_us: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    /// Read and applied (a `200` that parsed, or a `304`).
    pub success: bool,
    /// New validators (only after a parsed `200`).
    pub validators: Option<(Option<String>, Option<String>)>,
    pub interval_s: Option<i64>,
    pub next_fetch_us: i64,
    pub gone: bool,
    /// The URL permanent redirects lead to, and how many polls in a row have seen it.
    pub moved: Option<(String, i64)>,
    /// The URL to use from now on (the same move seen on three polls).
    pub new_url: Option<String>,
    pub identity_link: Option<String>,
    pub seeded: bool,
    pub hub: Option<(Option<String>, Option<String>)>,
}

/// Writes a fetch's outcome and lets go of the source.
pub fn finish(db: &Db, id: i64, o: &Outcome) -> Result<()> {
    let (etag, last_modified) = o.validators.clone().unzip();
    let (moved_to, moved_seen) = o.moved.clone().unzip();
    let (hub, topic) = o.hub.clone().unzip();
    db.execute(
        "UPDATE sources SET lease_until_us = NULL, last_fetch_us = ?2, last_status = ?3, \
         last_error = ?4, \
         last_success_us = CASE WHEN ?5 = 1 THEN ?2 ELSE last_success_us END, \
         errors = CASE WHEN ?5 = 1 THEN 0 ELSE errors + 1 END, \
         etag = CASE WHEN ?6 = 1 THEN ?7 ELSE etag END, \
         last_modified = CASE WHEN ?6 = 1 THEN ?8 ELSE last_modified END, \
         interval_s = COALESCE(?9, interval_s), next_fetch_us = ?10, \
         state = CASE WHEN ?11 = 1 THEN 'gone' WHEN ?5 = 1 THEN 'active' ELSE state END, \
         moved_to = ?12, moved_seen = COALESCE(?13, 0), url = COALESCE((SELECT CAST(?14 AS TEXT) WHERE NOT EXISTS (SELECT 1 FROM sources o WHERE o.url = ?14)), url), \
         identity = CASE WHEN CAST(?15 AS TEXT) IS NULL THEN identity ELSE 'link' END, \
         identity_note = COALESCE(?15, identity_note), \
         seeded_us = CASE WHEN ?16 = 1 AND seeded_us IS NULL THEN ?2 ELSE seeded_us END, \
         hub = CASE WHEN ?17 = 1 THEN ?18 ELSE hub END, \
         topic = CASE WHEN ?17 = 1 THEN ?19 ELSE topic END \
         WHERE id = ?1",
        params![
            id,
            o.at_us,
            o.status,
            o.error,
            o.success,
            o.validators.is_some(),
            etag.flatten(),
            last_modified.flatten(),
            o.interval_s,
            o.next_fetch_us,
            o.gone,
            moved_to,
            moved_seen,
            o.new_url,
            o.identity_link,
            o.seeded,
            o.hub.is_some(),
            hub.flatten(),
            topic.flatten()
        ],
    )?;
    Ok(())
}

/// Lets go of a source not fetched (its host asked to be left alone) until `at_us`.
pub fn postpone(db: &Db, id: i64, at_us: i64) -> Result<()> {
    db.execute(
        "UPDATE sources SET lease_until_us = NULL, next_fetch_us = ?2 WHERE id = ?1",
        params![id, at_us],
    )?;
    Ok(())
}

/// Moves a source's next poll to `at_us` (a WebSub push: now), unless it is gone.
pub fn poll_at(db: &Db, id: i64, at_us: i64) -> Result<bool> {
    Ok(db.execute(
        "UPDATE sources SET next_fetch_us = ?2 WHERE id = ?1 AND state <> 'gone'",
        params![id, at_us],
    )? > 0)
}

/// An entry already read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub id: i64,
    pub guid: Option<String>,
    pub link: Option<String>,
    pub article_id: String,
    pub article_slug: String,
}

/// The entry known by `guid`, else by `link`, else by `hash` (with `by_link_first`, the link
/// is asked before the guid).
pub fn find_entry(
    db: &Db,
    source_id: i64,
    guid: Option<&str>,
    link: Option<&str>,
    hash: &str,
    by_link_first: bool,
) -> Result<Option<Known>> {
    let by = |column: &str, value: &str| {
        db.query_opt(
            &format!(
                "SELECT id, guid, link, article_id, article_slug FROM source_entries \
                 WHERE source_id = ?1 AND {column} = ?2 ORDER BY id LIMIT 1"
            ),
            params![source_id, value],
            |r| {
                Ok(Known {
                    id: r.get(0)?,
                    guid: r.get(1)?,
                    link: r.get(2)?,
                    article_id: r.get(3)?,
                    article_slug: r.get(4)?,
                })
            },
        )
    };
    // By link: the guid only for an entry without one (the feed repeats guids).
    let order: [(&str, Option<&str>); 2] = if by_link_first {
        [("link", link), ("guid", guid.filter(|_| link.is_none()))]
    } else {
        [("guid", guid), ("link", link)]
    };
    for (column, value) in order {
        if let Some(value) = value {
            if let Some(found) = by(column, value)? {
                return Ok(Some(found));
            }
        }
    }
    if guid.is_none() && link.is_none() {
        return by("hash", hash);
    }
    Ok(None)
}

/// An entry first read now, and the article it became.
pub struct NewEntry<'a> {
    pub source_id: i64,
    pub guid: Option<&'a str>,
    pub link: Option<&'a str>,
    pub hash: &'a str,
    pub article_id: &'a str,
    pub article_slug: &'a str,
    pub now_us: i64,
}

pub fn insert_entry(db: &Db, e: &NewEntry<'_>) -> Result<()> {
    db.execute(
        "INSERT INTO source_entries (source_id, guid, link, hash, article_id, article_slug, \
         first_seen_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.source_id,
            e.guid,
            e.link,
            e.hash,
            e.article_id,
            e.article_slug,
            e.now_us
        ],
    )?;
    Ok(())
}

/// A known entry's identity as the feed now gives it (a changed guid or link, a new hash).
pub fn update_entry(
    db: &Db,
    id: i64,
    guid: Option<&str>,
    link: Option<&str>,
    hash: &str,
) -> Result<()> {
    db.execute(
        "UPDATE source_entries SET guid = COALESCE(?2, guid), link = COALESCE(?3, link), \
         hash = ?4 WHERE id = ?1",
        params![id, guid, link, hash],
    )?;
    Ok(())
}

/// What WebSub needs of a source: its state, hub, topic and secret.
#[derive(Debug, Clone)]
pub struct Hub {
    pub state: String,
    pub hub: Option<String>,
    pub topic: Option<String>,
    pub secret: Option<String>,
    pub url: String,
}

pub fn hub_of(db: &Db, id: i64) -> Result<Option<Hub>> {
    db.query_opt(
        "SELECT websub_state, hub, topic, websub_secret, url FROM sources WHERE id = ?1",
        params![id],
        |r| {
            Ok(Hub {
                state: r.get(0)?,
                hub: r.get(1)?,
                topic: r.get(2)?,
                secret: r.get(3)?,
                url: r.get(4)?,
            })
        },
    )
}

/// A subscription request is on its way: `state` (`subscribing`, or `active` for a renewal),
/// the secret it carries, and when to ask again if no verification comes.
pub fn websub_requested(db: &Db, id: i64, state: &str, secret: &str, retry_us: i64) -> Result<()> {
    db.execute(
        "UPDATE sources SET websub_state = ?2, websub_secret = ?3, websub_renew_us = ?4 \
         WHERE id = ?1",
        params![id, state, secret, retry_us],
    )?;
    Ok(())
}

/// The hub verified a subscription for `lease_seconds`: pushes come from now on, so the regular
/// poll drops to `max_interval_s`.
pub fn websub_verified(
    db: &Db,
    id: i64,
    now_us: i64,
    lease_seconds: i64,
    renew_us: i64,
    max_interval_s: i64,
) -> Result<()> {
    db.execute(
        "UPDATE sources SET websub_state = 'active', websub_lease_until_us = ?2, \
         websub_lease_seconds = ?3, websub_renew_us = ?4, interval_s = ?5, \
         next_fetch_us = CASE WHEN next_fetch_us < COALESCE(last_fetch_us, ?6) + ?7 \
             THEN COALESCE(last_fetch_us, ?6) + ?7 ELSE next_fetch_us END \
         WHERE id = ?1 AND state <> 'gone'",
        params![
            id,
            now_us + lease_seconds * 1_000_000,
            lease_seconds,
            renew_us,
            max_interval_s,
            now_us,
            max_interval_s * 1_000_000
        ],
    )?;
    Ok(())
}

/// The hub refused (or the subscription ended): back to polling alone; ask again at `retry_us`.
pub fn websub_ended(db: &Db, id: i64, retry_us: i64) -> Result<()> {
    db.execute(
        "UPDATE sources SET websub_state = 'none', websub_lease_until_us = NULL, \
         websub_renew_us = ?2 WHERE id = ?1",
        params![id, retry_us],
    )?;
    Ok(())
}

/// Sources whose subscription is due to be asked for (again) at `now_us`.
pub fn renewals_due(db: &Db, now_us: i64) -> Result<Vec<i64>> {
    db.query_map(
        "SELECT id FROM sources WHERE websub_renew_us <= ?1 AND hub IS NOT NULL \
         AND state <> 'gone' ORDER BY websub_renew_us LIMIT 100",
        params![now_us],
        |r| r.get(0),
    )
}

/// The earliest time a subscription is to be asked for.
pub fn next_renewal(db: &Db) -> Result<Option<i64>> {
    db.query_row(
        "SELECT MIN(websub_renew_us) FROM sources WHERE hub IS NOT NULL AND state <> 'gone'",
        params![],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_sources_starts_after_the_id_given() {
        let dir = tempfile::tempdir().expect("tmp");
        let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
        let db = Db::Lite(&conn);
        let mut ids = Vec::new();
        for n in 0..3 {
            let (url, slug) = (format!("https://b{n}.example/feed"), format!("b{n}"));
            let new = NewSource {
                url: &url,
                slug: &slug,
                name: &slug,
                tags: &[],
                interval_s: 900,
                now_us: 1,
            };
            ids.push(insert(&db, &new).expect("insert").expect("new"));
        }
        let ids_of = |page: Vec<Source>| page.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids_of(page(&db, None, 2).expect("page")), ids[..2]);
        assert_eq!(ids_of(page(&db, Some(ids[1]), 2).expect("page")), ids[2..]);
        assert!(page(&db, Some(ids[2]), 2).expect("page").is_empty());
    }
}
