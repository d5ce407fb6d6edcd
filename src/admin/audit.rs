//! The audit log: every change made through the console, the API or the command line, with
//! who made it, what it was and when.

use super::Actor;
use crate::params;
use crate::store::{Db, Error};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub at_us: i64,
    pub actor: String,
    pub via: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Records one change. `detail` must hold no secret.
pub fn record(
    db: &Db,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
    now_us: i64,
) -> Result<(), Error> {
    db.execute(
        "INSERT INTO audit_log (at_us, actor, via, action, target, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            now_us,
            actor.name,
            actor.via.as_str(),
            action,
            target,
            detail
        ],
    )?;
    Ok(())
}

/// A page of the log, newest first, from before id `before` (keyset paging).
pub fn page(db: &Db, before: Option<i64>, limit: usize) -> Result<Vec<Entry>, Error> {
    db.query_map(
        "SELECT id, at_us, actor, via, action, target, detail FROM audit_log \
         WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        params![before.unwrap_or(i64::MAX), limit as i64],
        entry,
    )
}

/// The changes made to one target (an address, a slug), oldest first.
pub fn for_target(db: &Db, target: &str) -> Result<Vec<Entry>, Error> {
    db.query_map(
        "SELECT id, at_us, actor, via, action, target, detail FROM audit_log \
         WHERE target = ?1 ORDER BY id",
        params![target],
        entry,
    )
}

fn entry(r: &crate::store::Row) -> Result<Entry, Error> {
    Ok(Entry {
        id: r.get(0)?,
        at_us: r.get(1)?,
        actor: r.get(2)?,
        via: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        detail: r.get(6)?,
    })
}
