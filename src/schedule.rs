//! When things run. `tokio-cron-scheduler` fires a heartbeat every second (in UTC, which it handles
//! correctly); each heartbeat asks whether `digest.schedule`, evaluated in `digest.time_zone` with
//! chrono-tz (right across daylight-saving changes), had an occurrence since the last one, and if
//! so triggers a digest run. A run only sends what is due by the database and the clock, so a late,
//! missed or doubled trigger sends nothing twice; on start, one catch-up run covers the downtime.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

/// A cron expression as tokio-cron-scheduler takes it: 6 fields, seconds first
/// (`sec min hour day-of-month month day-of-week`), an optional 7th for the year; day-of-month and
/// day-of-week must both match.
#[derive(Debug, Clone)]
pub struct Cron(croner::Cron);

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expr)
            .map(Cron)
            .map_err(|e| {
                format!(
                    "'{expr}' is not a 6-field cron expression (sec min hour day month weekday, e.g. \"0 0 * * * *\"): {e}"
                )
            })
    }

    /// Whether the expression fires in `(after, until]`, evaluated in `zone`.
    pub fn fires_between(
        &self,
        zone: chrono_tz::Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> bool {
        self.0
            .find_next_occurrence(&after.with_timezone(&zone), false)
            .is_ok_and(|next| next.with_timezone(&Utc) <= until)
    }
}

impl Cron {
    /// The first time the expression fires after `after`, evaluated in `zone`.
    pub fn next_after(&self, zone: chrono_tz::Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0
            .find_next_occurrence(&after.with_timezone(&zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Starts the scheduler: `trigger` runs once now (catch-up), then whenever the schedule fires.
pub async fn start<F, Fut>(
    cron: Cron,
    zone: chrono_tz::Tz,
    trigger: F,
) -> Result<JobScheduler, tokio_cron_scheduler::JobSchedulerError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let trigger = Arc::new(trigger);
    let last = Arc::new(Mutex::new(Utc::now()));
    tokio::spawn((trigger.clone())());
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async("* * * * * *", move |_id, _sched| {
        let trigger = trigger.clone();
        let last = last.clone();
        let cron = cron.clone();
        Box::pin(async move {
            let now = Utc::now();
            let mut last = last.lock().await;
            let fire = cron.fires_between(zone, *last, now);
            *last = now;
            drop(last);
            if fire {
                trigger().await;
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_field_expressions_are_refused_with_the_format() {
        assert!(Cron::parse("0 * * * *").unwrap_err().contains("6-field"));
        assert!(Cron::parse("0 0 * * * *").is_ok());
    }

    #[test]
    fn a_local_schedule_follows_daylight_saving() {
        // 08:00 every day in Paris: 07:00 UTC in winter, 06:00 UTC in summer (DST began 2027-03-28).
        let cron = Cron::parse("0 0 8 * * *").expect("cron");
        let paris = chrono_tz::Europe::Paris;
        let at = |y, m, d, h, min| {
            Utc.with_ymd_and_hms(y, m, d, h, min, 0)
                .single()
                .expect("time")
        };
        assert!(cron.fires_between(paris, at(2027, 3, 27, 6, 59), at(2027, 3, 27, 7, 0)));
        assert!(cron.fires_between(paris, at(2027, 3, 29, 5, 59), at(2027, 3, 29, 6, 0)));
        assert!(!cron.fires_between(paris, at(2027, 3, 29, 6, 1), at(2027, 3, 29, 6, 59)));
    }
}
