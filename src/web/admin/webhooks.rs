//! `/admin/webhooks`: the outgoing webhook endpoints (owner only: where the list's data goes),
//! and each one's delivery log, newest first, paged by id, with each attempt's time, status,
//! latency and the start of the answer; a ping, and a replay of a finished delivery.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{notice, render, time, Owner};
use crate::web::AppState;
use crate::webhook_endpoints::{EndpointError, WebhookEndpoints};

const PAGE: usize = 50;

fn service(state: &AppState) -> WebhookEndpoints {
    WebhookEndpoints::new(state.config.clone(), state.catalog.store().clone())
}

#[derive(serde::Serialize)]
struct EndpointRow {
    id: i64,
    url: String,
    types: String,
    enabled: bool,
    disabled_reason: String,
    created: String,
    last_success: String,
    failing_since: String,
}

fn row(e: &crate::webhook_endpoints::store::Endpoint) -> EndpointRow {
    EndpointRow {
        id: e.id,
        url: e.url.clone(),
        types: match e.event_types.is_empty() {
            true => "every event".into(),
            false => e.event_types.join(", "),
        },
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone().unwrap_or_default(),
        created: time(e.created_us),
        last_success: e
            .last_success_us
            .map(time)
            .unwrap_or_else(|| "never".into()),
        failing_since: e.failing_since_us.map(time).unwrap_or_default(),
    }
}

pub async fn list(State(state): State<Arc<AppState>>, Owner(who): Owner) -> Response {
    match service(&state).list().await {
        Ok(all) => {
            let rows: Vec<EndpointRow> = all.iter().map(row).collect();
            render(
                &state,
                StatusCode::OK,
                "webhooks.html",
                "Webhooks",
                Some(&who),
                context! { nav => "webhooks", rows => Value::from(Serde(&rows)) },
            )
        }
        Err(e) => super::db_error(&state, &who, e),
    }
}

#[derive(Deserialize)]
pub struct LogQuery {
    before: Option<i64>,
    done: Option<String>,
}

#[derive(serde::Serialize)]
struct AttemptRow {
    at: String,
    status: String,
    latency: String,
    response: String,
}

#[derive(serde::Serialize)]
struct DeliveryRow {
    id: i64,
    webhook_id: String,
    event_type: String,
    state: String,
    created: String,
    next: String,
    replayable: bool,
    attempts: Vec<AttemptRow>,
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Owner(who): Owner,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return notice(
            &state,
            StatusCode::NOT_FOUND,
            "No such endpoint",
            Some(&who),
            &[],
        );
    };
    let hooks = service(&state);
    let endpoint = match hooks.get(id).await {
        Ok(e) => e,
        Err(EndpointError::NotFound(_)) => {
            return notice(
                &state,
                StatusCode::NOT_FOUND,
                "No such endpoint",
                Some(&who),
                &[],
            )
        }
        Err(e) => return super::db_error(&state, &who, e),
    };
    let page = match hooks.deliveries(id, q.before, PAGE + 1).await {
        Ok(p) => p,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let next = (page.len() > PAGE).then(|| page[PAGE - 1].id);
    let rows: Vec<DeliveryRow> = page
        .iter()
        .take(PAGE)
        .map(|d| DeliveryRow {
            id: d.id,
            webhook_id: d.webhook_id.clone(),
            event_type: d.event_type.clone(),
            state: d.state.clone(),
            created: time(d.created_us),
            next: d.next_attempt_us.map(time).unwrap_or_default(),
            replayable: d.state != "pending",
            attempts: d
                .log
                .iter()
                .map(|a| AttemptRow {
                    at: chrono::DateTime::from_timestamp_micros(a.at_us)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_default(),
                    status: a
                        .status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "none".into()),
                    latency: format!("{:.1} ms", a.latency_us as f64 / 1000.0),
                    response: a.response.clone().unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "webhook.html",
        "Webhook endpoint",
        Some(&who),
        context! {
            nav => "webhooks",
            endpoint => Value::from(Serde(&row(&endpoint))),
            rows => Value::from(Serde(&rows)),
            next,
            first => q.before.is_none(),
            done => q.done,
        },
    )
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    delivery: Option<i64>,
}

/// A ping, or a replay of one delivery: posted to the endpoint's page, audited.
pub async fn act(
    State(state): State<Arc<AppState>>,
    Owner(who): Owner,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return notice(
            &state,
            StatusCode::NOT_FOUND,
            "No such endpoint",
            Some(&who),
            &[],
        );
    };
    let hooks = service(&state);
    let result: Result<String, EndpointError> = match (form.action.as_str(), form.delivery) {
        ("ping", _) => hooks.ping(id).await.map(|_| "ping queued".into()),
        ("replay", Some(d)) => hooks.replay(id, d).await.map(|queued| match queued {
            true => format!("delivery {d} queued again"),
            false => format!("delivery {d} is waiting already"),
        }),
        _ => {
            let message = "action: unknown. Nothing was changed.";
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Cannot do that",
                Some(&who),
                &[message],
            );
        }
    };
    match result {
        Ok(done) => {
            let action = format!("webhook_endpoint.{}", form.action);
            let target = format!("webhook-endpoint {id}");
            if let Err(e) = state
                .console
                .audit(&who.actor(), action, Some(target), None)
                .await
            {
                tracing::error!(error = %e, "cannot write the audit log");
            }
            let done: String = url::form_urlencoded::byte_serialize(done.as_bytes()).collect();
            Redirect::to(&format!("/admin/webhooks/{id}?done={done}")).into_response()
        }
        Err(EndpointError::Store(e)) => super::db_error(&state, &who, e),
        Err(e) => {
            let message = format!("{e}. Nothing was changed.");
            notice(
                &state,
                StatusCode::NOT_FOUND,
                "Cannot do that",
                Some(&who),
                &[&message],
            )
        }
    }
}
