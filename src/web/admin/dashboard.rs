//! `/admin`: the tiles (subscribers by status, suppressed, the outbox, the last and the next
//! run) and the charts (subscribers over 30, 90 or 365 days; the last 30 runs), each with its
//! numbers as a table.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::charts::{self, Series};
use super::{notice, render, time, Viewer};
use crate::digest::ledger::{self, RunSummary};
use crate::subscribers::events::{self, Day};
use crate::subscribers::store::{self, StatusCounts};
use crate::subscribers::suppressions;
use crate::web::AppState;

#[derive(Deserialize)]
pub struct DashboardQuery {
    days: Option<u32>,
}

/// What the dashboard shows, gathered in one read.
struct Gathered {
    counts: StatusCounts,
    suppressed: i64,
    outbox: i64,
    days: Vec<Day>,
    runs: Vec<RunSummary>,
}

#[derive(serde::Serialize)]
struct DayRow {
    date: String,
    confirmed: i64,
    confirmations: i64,
    unsubscribes: i64,
    bounces: i64,
    complaints: i64,
}

#[derive(serde::Serialize)]
struct RunRow {
    id: i64,
    at: String,
    sent: i64,
    failed: i64,
    bounced: i64,
    complained: i64,
    unsubscribed: i64,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let span = match q.days {
        None => 30,
        Some(d @ (30 | 90 | 365)) => d,
        Some(_) => {
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Bad period",
                Some(&who),
                &["days: must be 30, 90 or 365."],
            )
        }
    };
    let now = Utc::now();
    if state.digests.store.postgres().is_some() {
        // The status moves since the last fold, added to the counts first: then the snapshot
        // below reads four rows, not every move since housekeeping last ran.
        if let Err(e) = state.digests.store.write(store::fold_counts).await {
            tracing::warn!(error = %e, "cannot fold the subscribers' status counts");
        }
    }
    let gathered = state
        .digests
        .store
        .snapshot(move |db| {
            Ok::<_, crate::store::Error>(Gathered {
                counts: store::counts_by_status(db)?,
                suppressed: suppressions::count(db)?,
                outbox: crate::outbox::depth(db)?,
                days: events::daily(db, span, now)?,
                runs: ledger::runs(db, None, 30)?,
            })
        })
        .await;
    let g = match gathered {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the dashboard");
            return notice(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database error",
                Some(&who),
                &["The database did not answer; see the daemon's log."],
            );
        }
    };
    let next_run = crate::schedule::Cron::parse(&state.config.digest.schedule)
        .ok()
        .zip(state.config.digest.time_zone.parse::<chrono_tz::Tz>().ok())
        .and_then(|(cron, zone)| cron.next_after(zone, now))
        .map(|t| time(t.timestamp_micros()))
        .unwrap_or_else(|| "not scheduled".into());
    let last_run = g.runs.first().map(|r| {
        (
            r.id,
            time(r.at.timestamp_micros()),
            format!("{:?}", r.state).to_lowercase(),
        )
    });

    let labels: Vec<String> = g
        .days
        .iter()
        .map(|d| d.date.format("%m-%d").to_string())
        .collect();
    let column = |f: fn(&Day) -> i64| g.days.iter().map(|d| f(d) as f64).collect::<Vec<f64>>();
    let subscribers_chart = charts::line_over_bars(
        &format!("Subscribers over the last {span} days"),
        "chart-subscribers",
        &labels,
        &Series {
            name: "confirmed (right axis)",
            color: "#1a73e8",
            values: column(|d| d.confirmed),
        },
        &[Series {
            name: "new confirmations",
            color: "#188038",
            values: column(|d| d.confirmations),
        }],
        &[
            Series {
                name: "unsubscribes",
                color: "#e37400",
                values: column(|d| d.unsubscribes),
            },
            Series {
                name: "bounces",
                color: "#d93025",
                values: column(|d| d.bounces),
            },
            Series {
                name: "complaints",
                color: "#9334e6",
                values: column(|d| d.complaints),
            },
        ],
    );
    let day_rows: Vec<DayRow> = g
        .days
        .iter()
        .rev()
        .map(|d| DayRow {
            date: d.date.to_string(),
            confirmed: d.confirmed,
            confirmations: d.confirmations,
            unsubscribes: d.unsubscribes,
            bounces: d.bounces,
            complaints: d.complaints,
        })
        .collect();

    let runs: Vec<&RunSummary> = g.runs.iter().rev().collect();
    let run_labels: Vec<String> = runs.iter().map(|r| format!("#{}", r.id)).collect();
    let per_run =
        |f: fn(&RunSummary) -> i64| runs.iter().map(|r| f(r) as f64).collect::<Vec<f64>>();
    let runs_chart = charts::bars_with_lines(
        "The last 30 digest runs",
        "chart-runs",
        &run_labels,
        &[
            Series {
                name: "sent",
                color: "#1a73e8",
                values: per_run(|r| r.sent),
            },
            Series {
                name: "failed",
                color: "#d93025",
                values: per_run(|r| r.failed),
            },
        ],
        &[
            Series {
                name: "bounced (right axis)",
                color: "#e37400",
                values: per_run(|r| r.bounced),
            },
            Series {
                name: "complained",
                color: "#9334e6",
                values: per_run(|r| r.complained),
            },
            Series {
                name: "unsubscribed",
                color: "#188038",
                values: per_run(|r| r.unsubscribed),
            },
        ],
    );
    let run_rows: Vec<RunRow> = g
        .runs
        .iter()
        .map(|r| RunRow {
            id: r.id,
            at: time(r.at.timestamp_micros()),
            sent: r.sent,
            failed: r.failed,
            bounced: r.bounced,
            complained: r.complained,
            unsubscribed: r.unsubscribed,
        })
        .collect();

    let audience = match super::audience::read(&state, 30).await {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the feed audience");
            return notice(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database error",
                Some(&who),
                &["The database did not answer; see the daemon's log."],
            );
        }
    };
    let audience_rows: Vec<(String, f64)> = audience
        .feeds
        .iter()
        .map(|f| (f.feed.clone(), (f.readers_7d * 10.0).round() / 10.0))
        .collect();
    render(
        &state,
        StatusCode::OK,
        "dashboard.html",
        "Dashboard",
        Some(&who),
        context! {
            nav => "dashboard",
            span,
            counts => Value::from(Serde(&g.counts)),
            suppressed => g.suppressed,
            outbox => g.outbox,
            last_run,
            next_run,
            subscribers_chart => Value::from_safe_string(subscribers_chart),
            day_rows => Value::from(Serde(&day_rows)),
            runs_chart => Value::from_safe_string(runs_chart),
            run_rows => Value::from(Serde(&run_rows)),
            audience_chart => Value::from_safe_string(super::audience::chart(&audience)),
            audience_total => (audience.site.readers_7d * 10.0).round() / 10.0,
            audience_rows => Value::from(Serde(&audience_rows)),
        },
    )
}
