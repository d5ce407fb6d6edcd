//! The daemon's poller: due sources claimed with a lease (so nodes share them), a task each,
//! and a sleep until the next poll or WebSub renewal is due, a source is added or a push comes.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{store, Sources, LEASE};

impl Sources {
    /// The daemon's poller: takes due sources (leased, so nodes share them), polls each in a
    /// task of its own, and sleeps until the next is due or a source is added or pushed.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let free = self.in_flight.available_permits();
            let now_us = Utc::now().timestamp_micros();
            let until = now_us + LEASE.as_micros() as i64;
            let claimed = if free == 0 {
                Ok(Vec::new())
            } else {
                self.store
                    .write(move |db| store::claim_due(db, now_us, until, free))
                    .await
            };
            let claimed = claimed.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the sources due");
                Vec::new()
            });
            let full = claimed.len() == free && free > 0;
            for id in claimed {
                let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    if let Err(e) = me.poll_claimed(id).await {
                        tracing::warn!(source = id, error = %e, "a source's poll failed");
                    }
                });
            }
            if full {
                continue;
            }
            let now_us = Utc::now().timestamp_micros();
            let renewals = self
                .store
                .read(move |db| store::renewals_due(db, now_us))
                .await
                .unwrap_or_default();
            for id in renewals {
                let me = self.clone();
                tasks.spawn(async move { me.subscribe(id).await });
            }
            let (due, renewal) = self
                .store
                .read(|db| {
                    Ok::<_, crate::store::Error>((store::next_due(db)?, store::next_renewal(db)?))
                })
                .await
                .unwrap_or_default();
            let next = due.unwrap_or(i64::MAX).min(renewal.unwrap_or(i64::MAX));
            let wait_us = (next - Utc::now().timestamp_micros()).clamp(50_000, 30_000_000);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_micros(wait_us as u64)) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Polls under way end by their own timeout; a lease left behind expires by itself.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        // The wake-up holds a handle to the feed publisher, which stops when the last one goes.
        *self
            .on_change
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}
