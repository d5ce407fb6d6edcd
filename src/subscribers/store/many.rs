//! Subscribers by the thousand, for the console's bulk actions: the same changes as the
//! single-subscriber functions in `store`, for a list of ids in a few statements.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{ts, Result};
use crate::store::{Db, Error};
use crate::subscribers::Status;

/// `ids` a chunk at a time as an `IdList` whose placeholders start at `first`.
fn id_chunks(ids: &[i64], first: usize) -> impl Iterator<Item = crate::store::sql::IdList> + '_ {
    ids.chunks(crate::store::sql::ID_LIST_MAX)
        .map(move |chunk| crate::store::sql::IdList::new(first, chunk))
}

/// The `(id, address)` of those of `ids` that exist (bulk actions: what is still there).
pub fn emails_of(db: &Db, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::with_capacity(ids.len());
    for list in id_chunks(ids, 1) {
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        db.query_each(
            &format!(
                "SELECT id, email FROM subscribers WHERE id IN ({})",
                list.marks
            ),
            &params,
            |r| -> Result<()> {
                out.push((r.get(0)?, r.get(1)?));
                Ok(())
            },
        )?;
    }
    Ok(out)
}

/// For each of `ids` that exists, the first (lowest) id among the subscribers whose address is
/// the same in any case: whom a suppression's event names, as `find_all_cases(..).first()`.
pub fn first_of_address(db: &Db, ids: &[i64]) -> Result<HashMap<i64, i64>> {
    let mut out = HashMap::with_capacity(ids.len());
    for list in id_chunks(ids, 1) {
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        db.query_each(
            &format!(
                "SELECT b.id, (SELECT min(v.id) FROM subscribers v WHERE lower(v.email) = lower(b.email)) \
                 FROM subscribers b WHERE b.id IN ({})",
                list.marks
            ),
            &params,
            |r| -> Result<()> {
                out.insert(r.get(0)?, r.get(1)?);
                Ok(())
            },
        )?;
    }
    Ok(out)
}

/// How many of `ids` (with `every_case`, of their addresses in any spelling) are confirmed,
/// their rows locked until the caller's commit on PostgreSQL, as `store::confirmed_now` does for
/// one, so that two transactions moving them count each move once.
fn confirmed_among(db: &Db, ids: &[i64], every_case: bool) -> Result<i64> {
    let lock = if db.is_postgres() { " FOR UPDATE" } else { "" };
    let mut n = 0;
    for list in id_chunks(ids, 1) {
        let chosen = if every_case {
            format!(
                "lower(email) IN (SELECT lower(email) FROM subscribers WHERE id IN ({}))",
                list.marks
            )
        } else {
            format!("id IN ({})", list.marks)
        };
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        n += db
            .query_map(
                &format!(
                    "SELECT id FROM subscribers WHERE {chosen} AND status = 'confirmed'{lock}"
                ),
                &params,
                |r| r.get::<i64>(0),
            )?
            .len() as i64;
    }
    Ok(n)
}

/// Moves those of `ids` who are pending or confirmed to `status` (`Unsubscribed`, stamped as
/// `set_status` stamps it, or `Bounced`); with `every_case`, also the other spellings of their
/// addresses, as a suppression covers them all. The `(id, address)` of each one moved.
pub fn stop_many(
    db: &Db,
    ids: &[i64],
    status: Status,
    every_case: bool,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String)>> {
    let now = ts(&now);
    // The unsubscribe's time is `?1`; the ids follow it.
    let (set, stamp) = match status {
        Status::Unsubscribed => ("status = 'unsubscribed', unsubscribed_at = ?1", Some(&now)),
        Status::Bounced => ("status = 'bounced'", None),
        Status::Pending | Status::Confirmed => {
            return Err(Error::Task(format!(
                "stop_many moves subscribers away from pending and confirmed, not to {}",
                status.as_str()
            )))
        }
    };
    let first = 1 + usize::from(stamp.is_some());
    // Those leaving `confirmed`: the dashboard's confirmed line follows them.
    let confirmed = confirmed_among(db, ids, every_case)?;
    let mut moved = Vec::new();
    for list in id_chunks(ids, first) {
        let chosen = if every_case {
            format!(
                "lower(email) IN (SELECT lower(email) FROM subscribers WHERE id IN ({}))",
                list.marks
            )
        } else {
            format!("id IN ({})", list.marks)
        };
        let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(list.len() + 1);
        if let Some(stamp) = &stamp {
            params.push(stamp);
        }
        params.extend(list.params());
        db.query_each(
            &format!(
                "UPDATE subscribers SET {set} WHERE {chosen} AND status IN ('pending', 'confirmed') \
                 RETURNING id, email"
            ),
            &params,
            |r| -> Result<()> {
                moved.push((r.get(0)?, r.get(1)?));
                Ok(())
            },
        )?;
    }
    if confirmed > 0 {
        crate::subscribers::events::confirmed_total_changed(db, -confirmed, Utc::now())?;
    }
    Ok(moved)
}

/// Deletes the subscribers with these ids, with their ledger rows, as `delete` does one; how
/// many there were.
pub fn delete_many(db: &Db, ids: &[i64]) -> Result<usize> {
    // The ledger's rows go first, through their owner.
    crate::digest::ledger::forget_subscribers(db, ids)?;
    let confirmed = confirmed_among(db, ids, false)?;
    let mut deleted = 0;
    // Webhook endpoints that want `subscriber.deleted` are told who, in this transaction.
    let told = crate::webhook_endpoints::events::wanted(db, "subscriber.deleted")?;
    for list in id_chunks(ids, 1) {
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        if told {
            let gone: Vec<(i64, String)> = db.query_map(
                &format!(
                    "DELETE FROM subscribers WHERE id IN ({}) RETURNING id, email",
                    list.marks
                ),
                &params,
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            deleted += gone.len();
            crate::webhook_endpoints::events::subscribers_deleted(db, &gone, Utc::now())?;
            continue;
        }
        deleted += db.execute(
            &format!("DELETE FROM subscribers WHERE id IN ({})", list.marks),
            &params,
        )?;
    }
    // The dashboard's confirmed line follows, as `delete` keeps it for one.
    if confirmed > 0 {
        crate::subscribers::events::confirmed_total_changed(db, -confirmed, Utc::now())?;
    }
    Ok(deleted)
}
