//! Acting on every subscriber a search matched, not just one page: unsubscribe, suppress,
//! delete, export as CSV. The ids are taken once, when the admin confirms
//! (`search::matching`); the action then applies to exactly those ids, `BATCH` to a
//! transaction, so that a digest's writes wait for one batch at most, never for the whole
//! list, and someone who subscribes in the meantime is not touched. Each batch makes the same
//! changes and records the same events as the single-subscriber action (`flow::unsubscribe_in`,
//! `suppressions::add`, `store::delete`, `csv::export`).

use chrono::Utc;

use super::flow::FlowError;
use super::suppressions::{self, Reason};
use super::{csv as list_csv, flow, search, store as subscribers};
use crate::store::{Error, Store};

/// Subscribers per transaction.
pub const BATCH: usize = 1_000;

/// What a bulk action does to each subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pending and confirmed subscribers become unsubscribed (an `unsubscribe` event from
    /// `admin` each); unsubscribed and bounced ones are left as they are.
    Unsubscribe,
    /// Their addresses go on the suppression list (reason `admin`, a `suppressed` event per
    /// address), and every spelling of them that is pending or confirmed becomes unsubscribed.
    Suppress,
    /// The subscribers and their ledger rows are deleted; their events stay, keyed by address.
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Unsubscribe => "unsubscribe",
            Action::Suppress => "suppress",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Result<Action, String> {
        match s.trim() {
            "unsubscribe" => Ok(Action::Unsubscribe),
            "suppress" => Ok(Action::Suppress),
            "delete" => Ok(Action::Delete),
            other => Err(format!(
                "'{}' must be unsubscribe, suppress or delete",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// What a bulk action did, counted over the ids it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Ids given.
    pub requested: usize,
    /// Subscribers it changed: unsubscribed, their address newly suppressed, or deleted.
    pub changed: usize,
    /// Subscribers already so: unsubscribed or bounced, or their address already suppressed.
    pub unchanged: usize,
    /// Ids gone since they matched.
    pub missing: usize,
    /// Transactions it took.
    pub batches: usize,
}

/// The source events of a bulk action name, as for an admin's single action.
const SOURCE: &str = "admin";

/// Applies `action` to the subscribers with these ids, `BATCH` per transaction. A batch that
/// fails leaves the batches before it done, and returns the error.
pub async fn apply(store: &Store, action: Action, ids: &[i64]) -> Result<Outcome, Error> {
    let mut total = Outcome {
        requested: ids.len(),
        ..Outcome::default()
    };
    for chunk in ids.chunks(BATCH) {
        let chunk = chunk.to_vec();
        let done = store
            .write(move |db| {
                let now = Utc::now();
                let mut done = Outcome::default();
                match action {
                    Action::Unsubscribe => {
                        let there = subscribers::emails_of(db, &chunk)?.len();
                        done.changed = flow::unsubscribe_many_in(db, &chunk, SOURCE, now)?.len();
                        done.unchanged = there - done.changed;
                        done.missing = chunk.len() - there;
                    }
                    Action::Suppress => {
                        let added =
                            suppressions::add_many(db, &chunk, Reason::Admin, None, SOURCE, now)?;
                        done.changed = added.added;
                        done.unchanged = added.already;
                        done.missing = added.missing;
                    }
                    Action::Delete => {
                        done.changed = subscribers::delete_many(db, &chunk)?;
                        done.missing = chunk.len() - done.changed;
                    }
                }
                // The search index follows each batch, not one row at a time.
                search::sync(db)?;
                Ok::<_, Error>(done)
            })
            .await?;
        total.changed += done.changed;
        total.unchanged += done.unchanged;
        total.missing += done.missing;
        total.batches += 1;
    }
    if action == Action::Unsubscribe {
        crate::metrics::unsubscribed_many(SOURCE, total.changed as u64);
    }
    Ok(total)
}

/// Writes the subscribers with these ids that still exist to `out` as CSV, in the format of
/// `subscriber export` (which `subscriber import` reads back), `BATCH` at a time; the rows
/// written, and `out`.
pub async fn export_csv<W: std::io::Write + Send + 'static>(
    store: &Store,
    ids: &[i64],
    out: W,
) -> Result<(usize, W), FlowError> {
    let mut writer = csv::Writer::from_writer(out);
    list_csv::export_header(&mut writer)?;
    let mut written = 0;
    for chunk in ids.chunks(BATCH) {
        let chunk = chunk.to_vec();
        let (n, back) = store
            .read(move |db| {
                let n = list_csv::export_ids(db, &chunk, &mut writer)?;
                Ok::<_, FlowError>((n, writer))
            })
            .await?;
        written += n;
        writer = back;
    }
    let out = writer
        .into_inner()
        .map_err(|e| FlowError::Internal(e.to_string()))?;
    Ok((written, out))
}

#[cfg(test)]
mod tests;
