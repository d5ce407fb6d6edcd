//! The delivery log as the API, the CLI and the console read it, and replays: `webhook_deliveries`
//! and `webhook_attempts`, owned by `webhook_endpoints::store`.

use super::*;

/// A delivery as the log shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub created_us: i64,
    pub next_attempt_us: Option<i64>,
    pub finished_us: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub payload: String,
    pub log: Vec<AttemptView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptView {
    pub at_us: i64,
    pub status: Option<i64>,
    pub latency_us: i64,
    pub response: Option<String>,
}

/// A page of an endpoint's deliveries, newest first, from before id `before`, each with its
/// attempts (oldest first).
pub fn deliveries(
    db: &Db,
    endpoint: i64,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<DeliveryView>> {
    let mut out: Vec<DeliveryView> = db.query_map(
        "SELECT id, message_id, event_type, state, attempts, created_us, next_attempt_us, \
         finished_us, last_status, last_error, payload FROM webhook_deliveries \
         WHERE endpoint_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        params![endpoint, before.unwrap_or(i64::MAX), limit as i64],
        |r| {
            let state: String = r.get(3)?;
            let next: i64 = r.get(6)?;
            Ok(DeliveryView {
                id: r.get(0)?,
                webhook_id: r.get(1)?,
                event_type: r.get(2)?,
                next_attempt_us: (state == "pending").then_some(next),
                state,
                attempts: r.get(4)?,
                created_us: r.get(5)?,
                finished_us: r.get(7)?,
                last_status: r.get(8)?,
                last_error: r.get(9)?,
                payload: r.get(10)?,
                log: vec![],
            })
        },
    )?;
    let ids: Vec<i64> = out.iter().map(|d| d.id).collect();
    let mut logs: HashMap<i64, Vec<AttemptView>> = HashMap::new();
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = IdList::new(1, chunk);
        db.query_each(
            &format!(
                "SELECT delivery_id, at_us, status, latency_us, response FROM webhook_attempts \
                 WHERE delivery_id IN ({}) ORDER BY id",
                list.marks
            ),
            &list.params().collect::<Vec<_>>(),
            |r| -> Result<()> {
                logs.entry(r.get(0)?).or_default().push(AttemptView {
                    at_us: r.get(1)?,
                    status: r.get(2)?,
                    latency_us: r.get(3)?,
                    response: r.get(4)?,
                });
                Ok(())
            },
        )?;
    }
    for d in &mut out {
        d.log = logs.remove(&d.id).unwrap_or_default();
    }
    Ok(out)
}

/// Sends delivery `id` of `endpoint` again (same `webhook-id`), from its first attempt; `false`
/// if there is none, or it is waiting already.
pub fn replay(db: &Db, endpoint: i64, id: i64, now_us: i64) -> Result<Option<bool>> {
    let state: Option<String> = db.query_opt(
        "SELECT state FROM webhook_deliveries WHERE id = ?1 AND endpoint_id = ?2",
        params![id, endpoint],
        |r| r.get(0),
    )?;
    let Some(state) = state else {
        return Ok(None);
    };
    if state == "pending" {
        return Ok(Some(false));
    }
    db.execute(
        "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_us = ?2, \
         finished_us = NULL, lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
        params![id, now_us],
    )?;
    Ok(Some(true))
}

/// Sends again every finished delivery of `endpoint` made in `[since, until)`; how many.
pub fn replay_range(
    db: &Db,
    endpoint: i64,
    since_us: i64,
    until_us: i64,
    now_us: i64,
) -> Result<usize> {
    db.execute(
        "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_us = ?4, \
         finished_us = NULL, lease_owner = NULL, lease_until_us = NULL \
         WHERE endpoint_id = ?1 AND created_us >= ?2 AND created_us < ?3 AND state <> 'pending'",
        params![endpoint, since_us, until_us, now_us],
    )
}
