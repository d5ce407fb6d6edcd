//! `/admin/settings`: the configuration in force, read-only, every secret shown as
//! `[redacted]`; for owners, the accounts and API tokens too.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};

use super::{render, time, Editor};
use crate::admin::{accounts, tokens, Role};
use crate::web::AppState;

#[derive(serde::Serialize)]
struct Row {
    name: String,
    role: &'static str,
    created: String,
    last_used: String,
}

pub async fn page(State(state): State<Arc<AppState>>, Editor(who): Editor) -> Response {
    let settings: Vec<(String, String)> = state
        .config
        .effective()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let (people, programs) = if who.account.role >= Role::Owner {
        let found = state
            .console
            .store()
            .read(|db| Ok::<_, crate::store::Error>((accounts::list(db)?, tokens::list(db)?)))
            .await;
        match found {
            Ok((a, t)) => (
                a.into_iter()
                    .map(|a| Row {
                        name: a.name,
                        role: a.role.as_str(),
                        created: time(a.created_us),
                        last_used: String::new(),
                    })
                    .collect(),
                t.into_iter()
                    .map(|t| Row {
                        name: t.name,
                        role: t.role.as_str(),
                        created: time(t.created_us),
                        last_used: t.last_used_us.map(time).unwrap_or_else(|| "never".into()),
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot list accounts");
                (Vec::new(), Vec::new())
            }
        }
    } else {
        (Vec::new(), Vec::new())
    };
    render(
        &state,
        StatusCode::OK,
        "settings.html",
        "Settings",
        Some(&who),
        context! {
            nav => "settings",
            settings => Value::from(Serde(&settings)),
            accounts => Value::from(Serde(&people)),
            tokens => Value::from(Serde(&programs)),
        },
    )
}
