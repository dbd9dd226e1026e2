//! `/tables`: each watched table's state as the replica holds it, and `POST
//! /tables/{name}/resync` to copy one again on its own (clears a quarantine).
//!
//! With authentication configured, a resync needs a token whose role has the `resync`
//! permission in the policy file (the fixture gives it to `admin`). The request
//! is handed to the table's source, which picks it up in its stream (or when it is
//! back, if it is away); progress shows here and in the metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use super::OpsState;
use crate::announce::{Announcement, Announcer};
use crate::policy::Permission;
use crate::replica::TableState;

#[derive(Debug, Serialize)]
pub struct TableView {
    pub name: String,
    pub source: String,
    pub table: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rows: usize,
    /// The table holds every change up to this source position.
    pub position: String,
    pub schema_version: u32,
}

pub async fn list(State(state): State<Arc<OpsState>>) -> Json<Vec<TableView>> {
    let replica = state.replica.borrow().clone();
    let views = state
        .registry
        .tables()
        .map(|spec| {
            let t = replica.table(spec.id);
            TableView {
                name: spec.name.to_string(),
                source: spec.source.to_string(),
                table: format!("{}.{}", spec.schema, spec.table),
                state: match (t, replica.never_loaded(spec.id)) {
                    (Some(t), _) => t.state.name(),
                    (None, Some(_)) => "quarantined",
                    (None, None) => "loading",
                },
                reason: match t.map(|t| &t.state) {
                    Some(TableState::Stale { reason } | TableState::Quarantined { reason, .. }) => Some(reason.clone()),
                    Some(_) => None,
                    None => replica.never_loaded(spec.id).map(str::to_string),
                },
                rows: t.map_or(0, |t| t.len()),
                position: t.map_or_else(String::new, |t| t.since.to_string()),
                schema_version: t.map_or(0, |t| t.schema.version),
            }
        })
        .collect();
    Json(views)
}

/// How a follower passes a resync on to the cluster's leader.
#[derive(Clone, Debug)]
pub struct LeaderLink {
    pub duty: tokio::sync::watch::Receiver<crate::announce::Duty>,
    pub announcer: Announcer,
}

pub async fn resync(
    State(state): State<Arc<OpsState>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, Json<serde_json::Value>) {
    if let Some(auth) = &state.auth {
        let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match auth.require(header).await {
            Ok(p) if state.policy.current().policy.may(&p.role, Permission::Resync) => {}
            Ok(p) => {
                let message = format!("role `{}` may not ask for a resync (it needs the `resync` permission)", p.role);
                return (StatusCode::FORBIDDEN, Json(serde_json::json!({ "error": message, "code": "FORBIDDEN" })));
            }
            Err(e) => {
                return (e.http_status(), Json(serde_json::json!({ "error": e.to_string(), "code": e.code() })));
            }
        }
    }
    let Some(spec) = state.registry.by_name(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no watched table is named `{name}`") })),
        );
    };
    // A follower does not read the sources: the leader hears the request and acts on it.
    if let Some(link) = state.leader.as_ref().filter(|l| !l.duty.borrow().leads()) {
        let reason = "asked for through the API of another instance".to_string();
        link.announcer.announce(Announcement::Resync { table: name.clone(), reason });
        tracing::info!(table = %spec, "resync requested; passed on to the cluster's leader");
        return (StatusCode::ACCEPTED, Json(serde_json::json!({ "table": name, "resync": "requested" })));
    }
    let Some(requests) = state.resync.get(&spec.source) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("source `{}` is not running", spec.source) })),
        );
    };
    requests.request(spec.id, "asked for through the API".into());
    tracing::info!(table = %spec, "resync requested");
    (StatusCode::ACCEPTED, Json(serde_json::json!({ "table": name, "resync": "requested" })))
}
