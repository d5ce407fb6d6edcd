//! Subscribers and tokens: their SQL, on either backend.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::params;
use crate::store::{Db, Error, Row};

type Result<T, E = Error> = std::result::Result<T, E>;

mod many;
pub use many::{delete_many, emails_of, first_of_address, stop_many};

use super::tokens::{LinkKey, Purpose, Token};
use super::{Cadence, Preferences, Status, Subscriber, SubscriberEmail, TimeZone};

const COLUMNS: &str =
    "id, email, status, cadence, time_zone, created_at, confirmed_at, unsubscribed_at, welcomed_at";

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn read(db: &Db, r: &Row) -> Result<Subscriber> {
    let id: i64 = r.get(0)?;
    read_with_tags(r, tags_of(db, id)?)
}

fn read_with_tags(r: &Row, tags: Vec<String>) -> Result<Subscriber> {
    let bad = |index: usize, message: String| Error::Column { index, message };
    let time = |i: usize| -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = r.get(i)?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad(i, e.to_string()))
        })
        .transpose()
    };
    let id: i64 = r.get(0)?;
    let email: String = r.get(1)?;
    let status: String = r.get(2)?;
    let cadence: String = r.get(3)?;
    let zone: String = r.get(4)?;
    Ok(Subscriber {
        id,
        email: SubscriberEmail::parse(&email).map_err(|e| bad(1, e))?,
        status: Status::parse(&status).map_err(|e| bad(2, e))?,
        preferences: Preferences {
            tags,
            cadence: Cadence::parse(&cadence).map_err(|e| bad(3, e))?,
            time_zone: TimeZone::parse(&zone).map_err(|e| bad(4, e))?,
        },
        created_at: time(5)?.unwrap_or_default(),
        confirmed_at: time(6)?,
        unsubscribed_at: time(7)?,
        welcomed_at: time(8)?,
    })
}

/// A subscriber's tags in byte order on either backend (PostgreSQL's `ORDER BY` follows the
/// database's collation, which may not be byte order).
fn tags_of(db: &Db, id: i64) -> Result<Vec<String>> {
    let mut tags: Vec<String> = db.query_map(
        "SELECT tag_slug FROM subscriber_tags WHERE subscriber_id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    tags.sort();
    Ok(tags)
}

pub fn find(db: &Db, email: &SubscriberEmail) -> Result<Option<Subscriber>> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM subscribers WHERE email = ?1"),
        params![email.as_str()],
        |r| read(db, r),
    )
}

/// Every subscriber whose address is `email` in any case (the list keeps the local part as given,
/// so `Ann@x` and `ann@x` may be two rows; a suppression covers both).
pub fn find_all_cases(db: &Db, email: &str) -> Result<Vec<Subscriber>> {
    db.query_map(
        &format!("SELECT {COLUMNS} FROM subscribers WHERE lower(email) = ?1 ORDER BY id"),
        params![email.trim().to_lowercase()],
        |r| read(db, r),
    )
}

pub fn get(db: &Db, id: i64) -> Result<Option<Subscriber>> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM subscribers WHERE id = ?1"),
        params![id],
        |r| read(db, r),
    )
}

/// The subscribers with these ids (those that exist), in two statements per `ID_LIST_MAX`: a digest batch loads 64 at once, and on PostgreSQL a statement is a network round trip.
pub fn get_many(db: &Db, ids: &[i64]) -> Result<HashMap<i64, Subscriber>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = crate::store::sql::IdList::new(1, chunk);
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
        db.query_each(
            &format!(
                "SELECT subscriber_id, tag_slug FROM subscriber_tags WHERE subscriber_id IN ({})",
                list.marks
            ),
            &params,
            |r| -> Result<()> {
                tags.entry(r.get(0)?).or_default().push(r.get(1)?);
                Ok(())
            },
        )?;
        db.query_each(
            &format!(
                "SELECT {COLUMNS} FROM subscribers WHERE id IN ({})",
                list.marks
            ),
            &params,
            |r| -> Result<()> {
                let id: i64 = r.get(0)?;
                // Byte order, as `tags_of` gives.
                let mut mine = tags.remove(&id).unwrap_or_default();
                mine.sort();
                out.insert(id, read_with_tags(r, mine)?);
                Ok(())
            },
        )?;
    }
    Ok(out)
}

pub fn list(db: &Db, status: Option<Status>) -> Result<Vec<Subscriber>> {
    // Reading each row's tags inside the loop would need a second statement while the first
    // is open; read the rows, then their tags.
    let status = status.map(Status::as_str);
    let ids: Vec<i64> = db.query_map(
        "SELECT id FROM subscribers WHERE CAST(?1 AS TEXT) IS NULL OR status = ?1 ORDER BY id",
        params![status],
        |r| r.get(0),
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(s) = get(db, id)? {
            out.push(s);
        }
    }
    Ok(out)
}

pub fn insert(
    db: &Db,
    email: &SubscriberEmail,
    prefs: &Preferences,
    status: Status,
    now: DateTime<Utc>,
) -> Result<i64> {
    let confirmed = (status == Status::Confirmed).then(|| ts(&now));
    let window = (status == Status::Confirmed).then(|| now.timestamp_micros());
    let id: i64 = db.query_row(
        "INSERT INTO subscribers (email, status, cadence, time_zone, created_at, confirmed_at, window_start_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            email.as_str(),
            status.as_str(),
            prefs.cadence.as_str(),
            prefs.time_zone.name(),
            ts(&now),
            confirmed,
            window
        ],
        |r| r.get(0),
    )?;
    set_tags(db, id, &prefs.tags)?;
    if status == Status::Confirmed {
        super::events::confirmed_total_changed(db, 1, now)?;
    }
    Ok(id)
}

pub fn set_preferences(db: &Db, id: i64, prefs: &Preferences) -> Result<()> {
    db.execute(
        "UPDATE subscribers SET cadence = ?2, time_zone = ?3 WHERE id = ?1",
        params![id, prefs.cadence.as_str(), prefs.time_zone.name()],
    )?;
    set_tags(db, id, &prefs.tags)
}

fn set_tags(db: &Db, id: i64, tags: &[String]) -> Result<()> {
    db.execute(
        "DELETE FROM subscriber_tags WHERE subscriber_id = ?1",
        params![id],
    )?;
    for tag in tags {
        db.execute(
            "INSERT INTO subscriber_tags (subscriber_id, tag_slug) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![id, tag],
        )?;
    }
    Ok(())
}

/// A subscriber by id.
enum Key {
    Id(i64),
}

/// Whether the subscriber is confirmed (`None`: no such subscriber), their row locked until the
/// caller's commit on PostgreSQL, so that two transactions moving one subscriber count the move
/// once (SQLite's one writer already does that).
fn confirmed_now(db: &Db, key: Key) -> Result<Option<bool>> {
    let lock = if db.is_postgres() { " FOR UPDATE" } else { "" };
    let status: Option<String> = match key {
        Key::Id(id) => db.query_opt(
            &format!("SELECT status FROM subscribers WHERE id = ?1{lock}"),
            params![id],
            |r| r.get(0),
        )?,
    };
    Ok(status.map(|s| s == Status::Confirmed.as_str()))
}

/// Moves a subscriber to `status`, stamping when it was confirmed or unsubscribed. A move into
/// or out of `confirmed` changes the confirmed total (`events::confirmed_total_changed`): every
/// change of `status` goes through here, `count_bounce` or `delete`, which say so.
pub fn set_status(db: &Db, id: i64, status: Status, now: DateTime<Utc>) -> Result<()> {
    if let Some(was) = confirmed_now(db, Key::Id(id))? {
        if was != (status == Status::Confirmed) {
            super::events::confirmed_total_changed(db, if was { -1 } else { 1 }, now)?;
        }
    }
    let now_us = now.timestamp_micros();
    let now = ts(&now);
    let _ = match status {
        // A (re)confirmed subscriber's digests start from now: never the archive.
        Status::Confirmed => db.execute(
            "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?2, unsubscribed_at = NULL, \
             window_start_us = ?3, last_slot_us = NULL, bounces = 0 WHERE id = ?1",
            params![id, now, now_us],
        )?,
        Status::Unsubscribed => db.execute(
            "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?2 WHERE id = ?1",
            params![id, now],
        )?,
        other => db.execute(
            "UPDATE subscribers SET status = ?2 WHERE id = ?1",
            params![id, other.as_str()],
        )?,
    };
    Ok(())
}

/// Records that the welcome email is going out; `false` if it already did (send it at most once).
pub fn claim_welcome(db: &Db, id: i64, now: DateTime<Utc>) -> Result<bool> {
    Ok(db.execute(
        "UPDATE subscribers SET welcomed_at = ?2 WHERE id = ?1 AND welcomed_at IS NULL",
        params![id, ts(&now)],
    )? == 1)
}

pub fn delete(db: &Db, email: &SubscriberEmail) -> Result<bool> {
    let Some(found) = find(db, email)? else {
        return Ok(false);
    };
    if confirmed_now(db, Key::Id(found.id))? == Some(true) {
        super::events::confirmed_total_changed(db, -1, Utc::now())?;
    }
    // The ledger's rows go first, through their owner.
    crate::digest::ledger::forget_subscribers(db, &[found.id])?;
    let gone = db.execute("DELETE FROM subscribers WHERE id = ?1", params![found.id])? == 1;
    if gone {
        let email = found.email.as_str();
        crate::webhook_endpoints::events::subscriber_deleted(db, found.id, email, Utc::now())?;
    }
    Ok(gone)
}

/// Makes a token for one subscriber and one purpose, valid for `ttl`.
pub fn mint(
    db: &Db,
    subscriber: i64,
    purpose: Purpose,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Token> {
    let token = Token::generate();
    db.execute(
        "INSERT INTO tokens (hash, subscriber_id, purpose, created_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            &token.hash()[..],
            subscriber,
            purpose.as_str(),
            now.timestamp_micros(),
            (now + ttl).timestamp_micros()
        ],
    )?;
    Ok(token)
}

/// Why a token did not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Never issued, issued for another purpose, or its subscriber is gone: 404.
    Unknown,
    /// Past its expiry: 410.
    Expired,
    /// A single-use token that was already used: 410.
    Used,
}

/// A token that works, whose it is, and the digest delivery it came in (digest links only).
pub struct Redeemed {
    pub hash: [u8; 32],
    pub subscriber: Subscriber,
    pub delivery: Option<i64>,
}

/// Looks up `token` for `purpose` without using it up.
pub fn check(
    db: &Db,
    token: &Token,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Result<Redeemed, TokenProblem>> {
    let hash = token.hash();
    let row: Option<(i64, i64, Option<i64>)> = db.query_opt(
        "SELECT subscriber_id, expires_us, used_us FROM tokens WHERE hash = ?1 AND purpose = ?2",
        params![&hash[..], purpose.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let Some((subscriber_id, expires_us, used_us)) = row else {
        return check_sealed(db, token, purpose, now);
    };
    if used_us.is_some() {
        return Ok(Err(TokenProblem::Used));
    }
    if now.timestamp_micros() >= expires_us {
        return Ok(Err(TokenProblem::Expired));
    }
    Ok(match get(db, subscriber_id)? {
        Some(subscriber) => Ok(Redeemed {
            hash,
            subscriber,
            delivery: None,
        }),
        None => Err(TokenProblem::Unknown),
    })
}

/// A sealed token (see `tokens`): only preferences and unsubscribe links are sealed.
fn check_sealed(
    db: &Db,
    token: &Token,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Result<Redeemed, TokenProblem>> {
    if purpose == Purpose::Confirm {
        return Ok(Err(TokenProblem::Unknown));
    }
    let Some((subscriber_id, sealed)) = LinkKey::claimed(token) else {
        return Ok(Err(TokenProblem::Unknown));
    };
    let Some(subscriber) = get(db, subscriber_id)? else {
        return Ok(Err(TokenProblem::Unknown));
    };
    let email = subscriber.email.to_string();
    let Some(opened) = link_key(db)?.open(&sealed, purpose, &email) else {
        return Ok(Err(TokenProblem::Unknown));
    };
    if now.timestamp() >= opened.expires {
        return Ok(Err(TokenProblem::Expired));
    }
    Ok(Ok(Redeemed {
        hash: token.hash(),
        subscriber,
        delivery: opened.delivery,
    }))
}

/// This installation's key for sealed tokens, made on first use from the OS CSPRNG and kept in
/// the database, so the daemon and the CLI share it and links outlive restarts.
pub fn link_key(db: &Db) -> Result<LinkKey> {
    secret(db, "link_key").map(LinkKey::new)
}

/// The 256-bit secret called `name`, made on first use from the OS CSPRNG and kept in the
/// database (one per purpose: `link_key`, `verp_key`, `mailto_key`).
pub fn secret(db: &Db, name: &str) -> Result<[u8; 32]> {
    let read = |db: &Db| -> Result<Option<Vec<u8>>> {
        db.query_opt(
            "SELECT value FROM secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
    };
    if let Some(Ok(bytes)) = read(db)?.map(<[u8; 32]>::try_from) {
        return Ok(bytes);
    }
    db.execute(
        "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![name, &LinkKey::generate().bytes()[..]],
    )?;
    read(db)?
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(Error::NoRow)
}

/// Uses up a single-use token; `false` if someone else used it first.
pub fn use_up(db: &Db, hash: &[u8; 32], now: DateTime<Utc>) -> Result<bool> {
    Ok(db.execute(
        "UPDATE tokens SET used_us = ?2 WHERE hash = ?1 AND used_us IS NULL",
        params![&hash[..], now.timestamp_micros()],
    )? == 1)
}

/// Forgets tokens that expired more than a day ago.
pub fn prune_tokens(db: &Db, now: DateTime<Utc>) -> Result<usize> {
    db.execute(
        "DELETE FROM tokens WHERE expires_us < ?1",
        params![(now - Duration::days(1)).timestamp_micros()],
    )
}

/// The tag slugs the catalog knows, to check chosen tags against.
pub fn known_tags(db: &Db) -> Result<Vec<(String, String)>> {
    Ok(crate::catalog::store::tags(db)?
        .into_iter()
        .map(|t| (t.slug, t.name))
        .collect())
}

/// Records when each planned subscriber's digest slot was (`(subscriber, slot_us)`), so the
/// next plan knows they were handled.
pub fn record_slots(db: &Db, slots: &[(i64, i64)]) -> Result<()> {
    let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(slots.len() * 2);
    for (subscriber, at) in slots {
        params.push(subscriber);
        params.push(at);
    }
    db.execute(
        &format!(
            "UPDATE subscribers SET last_slot_us = v.column2 FROM (VALUES {}) AS v \
             WHERE subscribers.id = v.column1",
            crate::store::sql::values(slots.len(), &["BIGINT", "BIGINT"])
        ),
        &params,
    )?;
    Ok(())
}

/// What a sent digest changes about its subscriber, as one `UPDATE … FROM {from}`: the window
/// moves to the digest's end (never back) and the count of refusals in a row resets. The
/// ledger gives the relation (its sent log, or the group it records) and the expressions for
/// the subscriber id and the window's end in it (one row per subscriber), so that on
/// PostgreSQL a group changes both tables in one statement.
pub fn digest_sent_sql(from: &str, subscriber: &str, window_end: &str) -> String {
    format!(
        "UPDATE subscribers SET window_start_us = CASE WHEN coalesce(window_start_us, 0) > {window_end} \
         THEN window_start_us ELSE {window_end} END, bounces = 0 FROM {from} WHERE subscribers.id = {subscriber}"
    )
}

/// A digest refused for good: one more refusal in a row; at `limit` a confirmed subscriber
/// becomes `bounced`. Whether they just did.
pub fn count_bounce(db: &Db, id: i64, limit: u32) -> Result<bool> {
    db.execute(
        "UPDATE subscribers SET bounces = bounces + 1 WHERE id = ?1",
        params![id],
    )?;
    let bounced = db.execute(
        "UPDATE subscribers SET status = 'bounced' WHERE id = ?1 AND bounces >= ?2 AND status = 'confirmed'",
        params![id, limit],
    )? == 1;
    if bounced {
        super::events::confirmed_total_changed(db, -1, Utc::now())?;
    }
    Ok(bounced)
}

/// How many subscribers are in each status now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounts {
    pub pending: i64,
    pub confirmed: i64,
    pub unsubscribed: i64,
    pub bounced: i64,
}

/// How many subscribers are in each status, from the counts the schema keeps as they move
/// (migrations 013 / V8); on PostgreSQL with the moves not yet folded in. Reads only, so it runs
/// in a snapshot.
pub fn counts_by_status(db: &Db) -> Result<StatusCounts> {
    let sql = if db.is_postgres() {
        "SELECT status, sum(n)::bigint FROM (SELECT status, n FROM subscriber_counts \
         UNION ALL SELECT status, n FROM subscriber_count_moves) AS c GROUP BY status"
    } else {
        "SELECT status, n FROM subscriber_counts"
    };
    let mut counts = StatusCounts::default();
    for (status, n) in db.query_map(sql, &[], |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))? {
        match status.as_str() {
            "pending" => counts.pending = n,
            "confirmed" => counts.confirmed = n,
            "unsubscribed" => counts.unsubscribed = n,
            "bounced" => counts.bounced = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// On PostgreSQL, adds the moves its triggers appended to the counts and removes them, in one
/// statement, so that `counts_by_status` reads a few rows (the console's dashboard does this
/// before it reads, and housekeeping hourly). Two folds at once take turns on the moves' rows, so
/// none is counted twice. Nothing to do on SQLite, whose triggers add to the counts directly.
pub fn fold_counts(db: &Db) -> Result<()> {
    if db.is_postgres() {
        db.execute(
            "WITH moved AS (DELETE FROM subscriber_count_moves RETURNING status, n) \
             INSERT INTO subscriber_counts (status, n) \
             SELECT status, sum(n) FROM moved GROUP BY status \
             ON CONFLICT (status) DO UPDATE SET n = subscriber_counts.n + excluded.n",
            &[],
        )?;
    }
    Ok(())
}

/// How many subscribers are confirmed now.
pub fn confirmed_total(db: &Db) -> Result<i64> {
    db.query_row(
        "SELECT count(*) FROM subscribers WHERE status = 'confirmed'",
        &[],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests;
