//! `/admin/subscribers/{email}`: one subscriber's preferences and timeline (oldest first:
//! subscribed with its source, confirmed, each digest with its run, bounces, complaints,
//! unsubscribes, suppressions and the admins' actions), and the owner's actions on them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{notice, render, time, Owner, Signed, Viewer};
use crate::admin::audit;
use crate::subscribers::events::{self, Entry};
use crate::subscribers::suppressions::{self, Reason, Suppression};
use crate::subscribers::{bulk, store, Status, Subscriber, SubscriberEmail};
use crate::web::AppState;

/// One line of the timeline as the page shows it.
#[derive(serde::Serialize)]
struct Line {
    at_us: i64,
    at: String,
    what: String,
    source: String,
    detail: String,
    run: Option<i64>,
    approximate: bool,
}

fn line(e: &Entry) -> Line {
    let what = match (e.kind.as_str(), &e.bounce) {
        ("digest_sent", _) => "digest sent".to_string(),
        ("bounce", Some(kind)) => format!("bounce ({kind})"),
        (kind, _) => kind.to_string(),
    };
    Line {
        at_us: e.at.timestamp_micros(),
        at: time(e.at.timestamp_micros()),
        what,
        source: e.source.clone().unwrap_or_default(),
        detail: e.detail.clone().unwrap_or_default(),
        run: e.run_id,
        approximate: e.approximate,
    }
}

fn admin_line(a: &audit::Entry) -> Line {
    Line {
        at_us: a.at_us,
        at: time(a.at_us),
        what: a.action.clone(),
        source: format!("{} ({})", a.actor, a.via),
        detail: a.detail.clone().unwrap_or_default(),
        run: None,
        approximate: false,
    }
}

struct Gathered {
    subscriber: Option<Subscriber>,
    suppression: Option<Suppression>,
    lines: Vec<Line>,
}

async fn gather(state: &AppState, email: &str) -> Result<Gathered, crate::store::Error> {
    let email = email.to_string();
    state
        .digests
        .store
        .snapshot(move |db| {
            let subscriber = match SubscriberEmail::parse(&email) {
                Ok(e) => store::find(db, &e)?,
                Err(_) => None,
            };
            let mut lines: Vec<Line> = events::timeline(db, &email)?.iter().map(line).collect();
            lines.extend(
                audit::for_target(db, &email.to_lowercase())?
                    .iter()
                    .map(admin_line),
            );
            lines.sort_by_key(|l| l.at_us);
            Ok(Gathered {
                subscriber,
                suppression: suppressions::find(db, &email)?,
                lines,
            })
        })
        .await
}

#[derive(Deserialize)]
pub struct Shown {
    done: Option<String>,
}

/// What an action did, as the page after it says (only these words: the query string is not
/// shown as it came).
const DONE: &[&str] = &[
    "confirmation email queued",
    "unsubscribed",
    "suppressed",
    "suppression lifted",
];

pub async fn page(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Path(email): Path<String>,
    axum::extract::Query(shown): axum::extract::Query<Shown>,
) -> Response {
    let done = shown
        .done
        .and_then(|d| DONE.iter().find(|w| **w == d).map(|w| w.to_string()));
    show(&state, &who, &email, done).await
}

async fn show(state: &AppState, who: &Signed, email: &str, done: Option<String>) -> Response {
    let g = match gather(state, email).await {
        Ok(g) => g,
        Err(e) => return super::db_error(state, who, e),
    };
    if g.subscriber.is_none() && g.suppression.is_none() && g.lines.is_empty() {
        let message = format!("Nothing is known about {email}: no subscriber, no history.");
        return notice(
            state,
            StatusCode::NOT_FOUND,
            "No such subscriber",
            Some(who),
            &[&message],
        );
    }
    let s = g.subscriber.as_ref();
    render(
        state,
        StatusCode::OK,
        "subscriber.html",
        email,
        Some(who),
        context! {
            nav => "subscribers",
            email,
            exists => s.is_some(),
            status => s.map(|s| s.status.as_str()),
            cadence => s.map(|s| s.preferences.cadence.as_str()),
            time_zone => s.map(|s| s.preferences.time_zone.name()),
            tags => s.map(|s| s.preferences.tags.join(", ")),
            since => s.map(|s| time(s.created_at.timestamp_micros())),
            suppressed => g.suppression.as_ref().map(|x| format!("{} since {}", x.reason.as_str(), time(x.created_us))),
            pending => s.is_some_and(|s| s.status == Status::Pending),
            active => s.is_some_and(|s| matches!(s.status, Status::Pending | Status::Confirmed)),
            lines => Value::from(Serde(&g.lines)),
            done,
        },
    )
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    confirmed: String,
}

/// An owner's action on one subscriber: `resend` the confirmation, `unsubscribe`, `suppress`,
/// `lift`, `delete` (after a confirmation page).
pub async fn act(
    State(state): State<Arc<AppState>>,
    Owner(who): Owner,
    Path(email): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let parsed = match SubscriberEmail::parse(&email) {
        Ok(e) => e,
        Err(p) => {
            let message = format!("email: {p}. Nothing was changed.");
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Bad address",
                Some(&who),
                &[&message],
            );
        }
    };
    let found = {
        let e = parsed.clone();
        state
            .digests
            .store
            .read(move |db| store::find(db, &e))
            .await
    };
    let subscriber = match found {
        Ok(s) => s,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let store = state.digests.store.clone();
    let result: Result<String, String> = match (form.action.as_str(), &subscriber) {
        ("resend", Some(s)) if s.status == Status::Pending => {
            match state.subscriptions.queue_confirmation(s).await {
                Ok(Some(_)) => Ok("confirmation email queued".into()),
                Ok(None) => Err("a confirmation email is already waiting in the outbox".into()),
                Err(e) => Err(e.to_string()),
            }
        }
        ("unsubscribe", Some(s)) => bulk::apply(&store, bulk::Action::Unsubscribe, &[s.id])
            .await
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.changed == 1 {
                    Ok("unsubscribed".into())
                } else {
                    Err("they are not subscribed".into())
                }
            }),
        ("suppress", _) => {
            let e = parsed.clone();
            store
                .write(move |db| {
                    suppressions::add(db, &e, Reason::Admin, None, "admin", Utc::now())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|added| {
                    if added {
                        Ok("suppressed".into())
                    } else {
                        Err("already suppressed".into())
                    }
                })
        }
        ("lift", _) => {
            let e = parsed.as_str().to_string();
            store
                .write(move |db| suppressions::lift(db, &e, Utc::now()))
                .await
                .map_err(|e| e.to_string())
                .and_then(|lifted| {
                    if lifted {
                        Ok("suppression lifted".into())
                    } else {
                        Err("not suppressed".into())
                    }
                })
        }
        ("delete", Some(_)) if form.confirmed != "yes" => {
            return render(
                &state,
                StatusCode::OK,
                "subscriber_delete.html",
                "Delete subscriber",
                Some(&who),
                context! { nav => "subscribers", email => parsed.as_str() },
            )
        }
        ("delete", Some(s)) => bulk::apply(&store, bulk::Action::Delete, &[s.id])
            .await
            .map_err(|e| e.to_string())
            .map(|_| "deleted".into()),
        _ => Err(format!(
            "action: '{}' cannot be done to this address now",
            form.action.chars().take(20).collect::<String>()
        )),
    };
    match result {
        Ok(done) => {
            let target = parsed.as_str().to_lowercase();
            if let Err(e) = state
                .console
                .audit(
                    &who.actor(),
                    format!("subscriber.{}", form.action),
                    Some(target),
                    None,
                )
                .await
            {
                tracing::error!(error = %e, "cannot write the audit log");
            }
            if form.action == "delete" {
                return Redirect::to("/admin/subscribers").into_response();
            }
            // Back to the page (a reload does not post again), saying what was done.
            let done: String = url::form_urlencoded::byte_serialize(done.as_bytes()).collect();
            let path: String =
                url::form_urlencoded::byte_serialize(parsed.as_str().as_bytes()).collect();
            Redirect::to(&format!("/admin/subscribers/{path}?done={done}")).into_response()
        }
        Err(problem) => {
            let message = format!("{problem}. Nothing was changed.");
            notice(
                &state,
                StatusCode::CONFLICT,
                "Cannot do that",
                Some(&who),
                &[&message],
            )
        }
    }
}
