//! Acting on a message that came back, in one transaction: store it raw, find whose it is (the
//! VERP tag, else the quoted original's Message-ID; never its To or From), and apply the rules:
//! a hard bounce suppresses at once, other permanent failures count towards
//! `mail.bounce_limit`, delays towards `mail.soft_bounce_limit` within `mail.soft_bounce_days`,
//! a complaint unsubscribes and suppresses, a mailto with a valid token unsubscribes. Anything
//! else is recorded as ignored and changes nothing.

use crate::params;
use crate::store::{Db, Error};
use chrono::{DateTime, Duration, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

use super::report::{self, Bounce, Report};
use super::tags::{Keys, Tagged, UNSUBSCRIBE_PREFIX, VERP_PREFIX};
use crate::config::Config;
use crate::mail::TaggedMailbox;
use crate::subscribers::events::{self, Kind, NewEvent};
use crate::subscribers::suppressions::{self, Reason};
use crate::subscribers::{store, Status, Subscriber};

/// What the rules need to know.
#[derive(Clone)]
pub struct Rules {
    pub return_path: Option<TaggedMailbox>,
    pub unsubscribe: Option<TaggedMailbox>,
    pub keys: Keys,
    pub bounce_limit: u32,
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
}

impl Rules {
    pub fn new(config: &Config, keys: Keys) -> Result<Rules, crate::mail::MailConfigError> {
        let (return_path, unsubscribe) = crate::mail::feedback_mailboxes(config)?;
        Ok(Rules {
            return_path,
            unsubscribe,
            keys,
            bounce_limit: config.mail.bounce_limit.max(1),
            soft_bounce_limit: config.mail.soft_bounce_limit,
            soft_bounce_days: config.mail.soft_bounce_days,
        })
    }

    /// Whether the listener takes mail for `address`: the return path, its `+tag` variants, and
    /// the unsubscribe mailbox.
    pub fn accepts(&self, address: &str) -> bool {
        [&self.return_path, &self.unsubscribe]
            .into_iter()
            .flatten()
            .any(|m| m.matches(address).is_some())
    }
}

/// One message as it arrived.
pub struct Inbound<'a> {
    pub mail_from: Option<&'a str>,
    pub rcpt_to: &'a [String],
    pub raw: &'a [u8],
}

/// What was done.
#[derive(Debug, Clone)]
pub struct Handled {
    pub id: i64,
    pub class: &'static str,
    pub outcome: String,
}

/// Whose message a report is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Whose {
    pub subscriber: i64,
    pub delivery: Option<i64>,
    pub outbox: Option<i64>,
}

/// Handles one message, in the caller's transaction; an error means nothing was stored (the
/// caller rolls back, and the sender retries later).
pub fn handle(db: &Db, rules: &Rules, msg: &Inbound<'_>, now: DateTime<Utc>) -> Result<Handled> {
    let report = report::parse(msg.raw);
    let mut verp = None;
    let mut mailto = None;
    for rcpt in msg.rcpt_to {
        for mailbox in [&rules.return_path, &rules.unsubscribe]
            .into_iter()
            .flatten()
        {
            if let Some(Some(tag)) = mailbox.matches(rcpt) {
                let tag = tag.to_ascii_lowercase();
                if tag.starts_with(VERP_PREFIX) {
                    verp.get_or_insert(tag);
                } else if tag.starts_with(UNSUBSCRIBE_PREFIX) {
                    mailto.get_or_insert(tag);
                }
            }
        }
    }
    let to_unsubscribe = msg.rcpt_to.iter().any(|r| {
        rules.unsubscribe.as_ref().is_some_and(|m| {
            m.matches(r)
                .is_some_and(|tag| !tag.is_some_and(|t| t.starts_with(VERP_PREFIX)))
        })
    });
    let class = match &report {
        Report::Dsn(_) => "dsn",
        Report::Complaint(_) => "complaint",
        Report::AutoReply => "auto_reply",
        Report::Other { .. } if to_unsubscribe => "unsubscribe",
        Report::Other { .. } => "other",
    };
    let tx = db;
    let id: i64 = db.query_row(
        "INSERT INTO inbound_messages (received_us, mail_from, rcpt_to, class, outcome, size, raw) \
         VALUES (?1, ?2, ?3, ?4, '', ?5, ?6) RETURNING id",
        params![
            now.timestamp_micros(),
            msg.mail_from.map(|f| f.chars().take(320).collect::<String>()),
            msg.rcpt_to.join(",").chars().take(2000).collect::<String>(),
            class,
            msg.raw.len() as i64,
            msg.raw
        ],
        |r| r.get(0),
    )?;
    let outcome = match &report {
        Report::Other { subject } if class == "unsubscribe" => {
            let token = mailto.or_else(|| subject_token(subject.as_deref()));
            mailto_unsubscribe(tx, rules, token.as_deref(), id, now)?
        }
        _ => match whose(tx, rules, verp.as_deref(), original_id(&report), now)? {
            Err(why) => why,
            Ok(who) => apply(tx, rules, &report, who, id, now)?,
        },
    };
    db.execute(
        "UPDATE inbound_messages SET outcome = ?2 WHERE id = ?1",
        params![id, outcome],
    )?;
    metrics::counter!("tidings_inbound_messages_total", "class" => class).increment(1);
    Ok(Handled { id, class, outcome })
}

fn original_id(report: &Report) -> Option<&str> {
    match report {
        Report::Dsn(d) => d.original_message_id.as_deref(),
        Report::Complaint(c) => c.original_message_id.as_deref(),
        _ => None,
    }
}

/// `unsubscribe u…` in a subject (the mailto URI carries the token there too, for mail systems
/// that drop `+tag`s).
fn subject_token(subject: Option<&str>) -> Option<String> {
    subject?
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_lowercase()
        })
        .find(|w| w.starts_with(UNSUBSCRIBE_PREFIX) && w.len() == super::tags::UNSUBSCRIBE_LEN)
}

/// The delivery a report is about: by VERP tag, else by the quoted Message-ID.
fn whose(
    db: &Db,
    rules: &Rules,
    tag: Option<&str>,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Result<Whose, String>> {
    if let Some(tag) = tag {
        let Some(tagged) = rules.keys.check_verp(tag, now) else {
            return Ok(Err(
                "the return-path tag is forged or expired: nothing changed".into(),
            ));
        };
        let (table, id) = match tagged {
            Tagged::Digest(id) => (Table::Deliveries, id),
            Tagged::Single(id) => (Table::Outbox, id),
        };
        let found = table.find(db, "id", &id)?;
        return Ok(found.ok_or_else(|| "the delivery it names is gone: nothing changed".into()));
    }
    let Some(mid) = message_id else {
        return Ok(Err(
            "no return-path tag and no quoted Message-ID: nothing matched".into(),
        ));
    };
    Ok(by_message_id(db, mid)?
        .ok_or_else(|| "the quoted Message-ID is not one of ours: nothing matched".into()))
}

/// Where a delivery is recorded: a digest in the ledger, a single email in the outbox.
#[derive(Clone, Copy)]
enum Table {
    Deliveries,
    Outbox,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Deliveries => "deliveries",
            Table::Outbox => "outbox",
        }
    }

    /// The delivery whose `column` is `value`, and whose subscriber it is.
    fn find(self, db: &Db, column: &str, value: &dyn crate::store::Param) -> Result<Option<Whose>> {
        let table = self.name();
        let found = db.query_opt(
            &format!("SELECT id, subscriber_id FROM {table} WHERE {column} = ?1"),
            &[value],
            |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
        )?;
        Ok(found.map(|(id, subscriber)| Whose {
            subscriber,
            delivery: matches!(self, Table::Deliveries).then_some(id),
            outbox: matches!(self, Table::Outbox).then_some(id),
        }))
    }
}

/// The latest delivery (a digest, else a single email) sent to `subscriber` since `since_us`.
pub(crate) fn latest_sent_to(db: &Db, subscriber: i64, since_us: i64) -> Result<Option<Whose>> {
    crate::digest::ledger::fold_sent(db)?;
    for (table, sent_at) in [
        (Table::Deliveries, "sent_us"),
        (Table::Outbox, "finished_us"),
    ] {
        let name = table.name();
        let id = db.query_opt(
            &format!(
                "SELECT id FROM {name} WHERE subscriber_id = ?1 AND state = 'sent' AND {sent_at} >= ?2 \
                 ORDER BY id DESC LIMIT 1"
            ),
            params![subscriber, since_us],
            |r| r.get::<i64>(0),
        )?;
        if let Some(id) = id {
            return Ok(Some(Whose {
                subscriber,
                delivery: matches!(table, Table::Deliveries).then_some(id),
                outbox: matches!(table, Table::Outbox).then_some(id),
            }));
        }
    }
    Ok(None)
}

/// The delivery (a digest, else a single email) we sent with this Message-ID (with or without
/// angle brackets).
pub(crate) fn by_message_id(db: &Db, id: &str) -> Result<Option<Whose>> {
    // A digest sent a moment ago may still be in the sent log (inside a write, as every caller).
    crate::digest::ledger::fold_sent(db)?;
    let mid = format!("<{}>", id.trim().trim_matches(|c| c == '<' || c == '>'));
    for table in [Table::Deliveries, Table::Outbox] {
        if let Some(found) = table.find(db, "message_id", &mid)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// An event about `s` and the delivery `who` names, from inbound message `inbound`.
pub(crate) fn event<'a>(
    s: &'a Subscriber,
    kind: Kind,
    source: &'a str,
    who: Whose,
    inbound: Option<i64>,
) -> NewEvent<'a> {
    let mut e = NewEvent::new(s.email.as_str(), kind, source).subscriber(s.id);
    e.delivery_id = who.delivery;
    e.outbox_id = who.outbox;
    e.inbound_id = inbound;
    e
}

/// Applies a DSN, complaint or ignorable message about `who`.
fn apply(
    db: &Db,
    rules: &Rules,
    report: &Report,
    who: Whose,
    inbound: i64,
    now: DateTime<Utc>,
) -> Result<String> {
    let Some(s) = store::get(db, who.subscriber)? else {
        return Ok("the subscriber is gone: nothing changed".into());
    };
    match report {
        Report::Dsn(dsn) => {
            let Some((r, bounce)) = dsn.worst() else {
                events::record(
                    db,
                    &event(&s, Kind::Ignored, "dsn", who, Some(inbound)).detail("delivered"),
                    now,
                )?;
                return Ok("a DSN that reports no failure: ignored".into());
            };
            let detail = format!(
                "{} {}",
                r.status.as_deref().unwrap_or("-"),
                r.diagnostic.as_deref().unwrap_or("")
            );
            bounced(
                db,
                rules,
                &s,
                bounce,
                "dsn",
                detail.trim(),
                who,
                Some(inbound),
                now,
            )
        }
        Report::Complaint(c) if c.feedback_type == "not-spam" => {
            events::record(
                db,
                &event(&s, Kind::Ignored, "arf", who, Some(inbound)).detail("not-spam"),
                now,
            )?;
            Ok("a not-spam report: ignored".into())
        }
        Report::Complaint(c) => {
            complained(db, &s, "arf", &c.feedback_type, who, Some(inbound), now)
        }
        Report::AutoReply | Report::Other { .. } => {
            let what = report.class();
            events::record(
                db,
                &event(&s, Kind::Ignored, "inbound", who, Some(inbound)).detail(what),
                now,
            )?;
            Ok(format!("{what}: ignored"))
        }
    }
}

/// A complaint about `s`: unsubscribed and suppressed. Shared with the webhooks.
pub(crate) fn complained(
    db: &Db,
    s: &Subscriber,
    source: &str,
    detail: &str,
    who: Whose,
    inbound: Option<i64>,
    now: DateTime<Utc>,
) -> Result<String> {
    let e = event(s, Kind::Complaint, source, who, inbound).detail(detail);
    events::record(db, &e, now)?;
    suppressions::add(db, &s.email, Reason::Complaint, None, source, now)?;
    metrics::counter!("tidings_complaints_total").increment(1);
    Ok(format!(
        "complaint ({detail}): {} unsubscribed and suppressed",
        s.email
    ))
}

/// A bounce of `kind` for `s`. Counted once per delivery and kind.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bounced(
    db: &Db,
    rules: &Rules,
    s: &Subscriber,
    kind: Bounce,
    source: &str,
    detail: &str,
    who: Whose,
    inbound: Option<i64>,
    now: DateTime<Utc>,
) -> Result<String> {
    let seen: bool = db.query_row(
        "SELECT EXISTS (SELECT 1 FROM events WHERE subscriber_id = ?1 AND kind = 'bounce' AND bounce = ?2 \
         AND ((CAST(?3 AS BIGINT) IS NOT NULL AND delivery_id = ?3) OR (CAST(?4 AS BIGINT) IS NOT NULL AND outbox_id = ?4)))",
        params![s.id, kind.as_str(), who.delivery, who.outbox],
        |r| r.get(0),
    )?;
    if seen {
        return Ok(format!(
            "{} bounce already counted for this delivery",
            kind.as_str()
        ));
    }
    let e = event(s, Kind::Bounce, source, who, inbound)
        .bounce(kind.as_str())
        .detail(detail.chars().take(400).collect::<String>());
    events::record(db, &e, now)?;
    metrics::counter!("tidings_bounces_total", "kind" => kind.as_str()).increment(1);
    let suppress = |reason: Reason| -> Result<()> {
        if s.status != Status::Unsubscribed {
            store::set_status(db, s.id, Status::Bounced, now)?;
        }
        suppressions::add(db, &s.email, reason, None, source, now)?;
        Ok(())
    };
    Ok(match kind {
        Bounce::Hard => {
            suppress(Reason::HardBounce)?;
            format!("hard bounce: {} bounced and suppressed", s.email)
        }
        Bounce::Other => {
            // Consecutive, as at send time, but counted in deliveries: the relay takes every
            // message (so no send says it failed), and the DSN comes later. Bounced when each of
            // their last `bounce_limit` digests came back.
            let count: u32 = db.query_row(
                "SELECT count(*) FROM (SELECT id FROM deliveries WHERE subscriber_id = ?1 AND state = 'sent' \
                 ORDER BY id DESC LIMIT ?2) d WHERE EXISTS (SELECT 1 FROM events e WHERE e.delivery_id = d.id \
                 AND e.kind = 'bounce' AND e.bounce IN ('other', 'hard'))",
                params![s.id, rules.bounce_limit],
                |r| r.get(0),
            )?;
            if count >= rules.bounce_limit {
                suppress(Reason::Bounces)?;
                format!(
                    "bounce {count} of {}: {} bounced and suppressed",
                    rules.bounce_limit, s.email
                )
            } else {
                format!("bounce {count} of {} for {}", rules.bounce_limit, s.email)
            }
        }
        Bounce::Soft => {
            let since = now - Duration::days(i64::from(rules.soft_bounce_days));
            let count: u32 = db.query_row(
                "SELECT count(*) FROM events WHERE subscriber_id = ?1 AND kind = 'bounce' AND bounce = 'soft' AND at_us >= ?2",
                params![s.id, since.timestamp_micros()],
                |r| r.get(0),
            )?;
            if count >= rules.soft_bounce_limit {
                suppress(Reason::SoftBounces)?;
                format!(
                    "soft bounce {count} of {} within {} days: {} bounced and suppressed",
                    rules.soft_bounce_limit, rules.soft_bounce_days, s.email
                )
            } else {
                format!(
                    "soft bounce {count} of {} for {}",
                    rules.soft_bounce_limit, s.email
                )
            }
        }
        Bounce::Policy => match who.delivery {
            Some(delivery) => policy_wave(db, delivery, detail, now)?,
            None => format!("blocked by policy ({detail}): recorded, nobody suppressed"),
        },
    })
}

/// Distinct recipients of one run whose digests came back blocked by policy (5.7.x) before the
/// run is paused: at least this many, and at least 2% of the run.
pub const POLICY_WAVE: i64 = 10;

/// A 5.7.x for a digest: when enough of the same run's recipients are blocked, the *sender*
/// is (a blocklist, a reputation problem), not the recipients. The run is paused, it is raised
/// in the log and `tidings_digest_runs_paused_total`, and nobody is suppressed for it.
fn policy_wave(db: &Db, delivery: i64, detail: &str, now: DateTime<Utc>) -> Result<String> {
    let Some(run) = db.query_opt(
        "SELECT run_id FROM deliveries WHERE id = ?1",
        params![delivery],
        |r| r.get::<i64>(0),
    )?
    else {
        return Ok(format!(
            "blocked by policy ({detail}): recorded, nobody suppressed"
        ));
    };
    let (blocked, size): (i64, i64) = db.query_row(
        "SELECT (SELECT count(DISTINCT e.subscriber_id) FROM events e JOIN deliveries d ON d.id = e.delivery_id \
                 WHERE d.run_id = ?1 AND e.kind = 'bounce' AND e.bounce = 'policy'), \
                (SELECT deliveries FROM digest_runs WHERE id = ?1)",
        params![run],
        |r| Ok((r.get(0)?, r.get::<Option<i64>>(1)?.unwrap_or(0))),
    )?;
    let threshold = POLICY_WAVE.max(size / 50);
    if blocked < threshold {
        return Ok(format!(
            "blocked by policy ({detail}): {blocked} of run {run}'s recipients so far; nobody suppressed"
        ));
    }
    let reason = format!("{blocked} recipients blocked by policy (5.7.x), e.g. {detail}");
    match crate::digest::ledger::pause(db, run, &reason, now)? {
        Some(held) => {
            metrics::counter!("tidings_digest_runs_paused_total").increment(1);
            tracing::error!(
                run,
                blocked,
                held,
                %detail,
                "the sender looks blocked: digest run paused (resume with `tidings digest resume {run}` once fixed)"
            );
            Ok(format!(
                "blocked by policy: {blocked} recipients of run {run}: the run is paused ({held} digests held back); nobody suppressed"
            ))
        }
        None => Ok(format!(
            "blocked by policy ({detail}): run {run} is already paused; nobody suppressed"
        )),
    }
}

/// A message to the unsubscribe mailbox: unsubscribes exactly as the one-click POST does when
/// its token is valid for the subscriber it names; otherwise changes nothing (From is forgeable).
fn mailto_unsubscribe(
    db: &Db,
    rules: &Rules,
    token: Option<&str>,
    inbound: i64,
    now: DateTime<Utc>,
) -> Result<String> {
    let Some(token) = token else {
        return Ok("no unsubscribe token: nothing changed".into());
    };
    let Some(id) = Keys::unsubscribe_claim(token) else {
        return Ok("not an unsubscribe token: nothing changed".into());
    };
    let Some(s) = store::get(db, id)? else {
        return Ok("the token's subscriber is gone: nothing changed".into());
    };
    if !rules
        .keys
        .check_unsubscribe(token, s.id, s.email.as_str(), now)
    {
        return Ok("the unsubscribe token is forged or expired: nothing changed".into());
    }
    if crate::subscribers::flow::unsubscribe_in(db, &s, "mailto", Some(inbound), None, now)? {
        crate::metrics::unsubscribed("mailto");
        Ok(format!("{} unsubscribed (mailto)", s.email))
    } else {
        Ok(format!("{} was already {}", s.email, s.status.as_str()))
    }
}

/// Forgets raw messages older than `keep_days`.
pub fn prune(db: &Db, keep_days: u32, now: DateTime<Utc>) -> Result<usize> {
    let before = now - Duration::days(i64::from(keep_days));
    db.execute(
        "DELETE FROM inbound_messages WHERE received_us < ?1",
        params![before.timestamp_micros()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_messages_are_pruned_after_keep_days() {
        let dir = tempfile::tempdir().expect("tmp");
        let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
        let db = Db::Lite(&conn);
        let now = Utc::now();
        for (age_days, raw) in [(31, "old"), (29, "recent")] {
            db.execute(
                "INSERT INTO inbound_messages (received_us, rcpt_to, class, outcome, size, raw) \
                 VALUES (?1, 'bounces@x.example', 'other', 'ignored', 3, ?2)",
                params![
                    (now - Duration::days(age_days)).timestamp_micros(),
                    raw.as_bytes()
                ],
            )
            .expect("insert");
        }
        assert_eq!(prune(&db, 30, now).expect("prune"), 1);
        let left: Vec<u8> = db
            .query_row("SELECT raw FROM inbound_messages", &[], |r| r.get(0))
            .expect("left");
        assert_eq!(left, b"recent");
    }
}
