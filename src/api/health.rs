//! Liveness and readiness.
//!
//! `/healthz` answers while the process can serve requests. `/readyz` answers 200 only when
//! every source is streaming and its tables' snapshots are applied, so a load balancer sends
//! no reader to a replica that is still loading or has lost its source; the body says why not.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::OpsState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub sources: Vec<SourceReadiness>,
}

#[derive(Debug, Serialize)]
pub struct SourceReadiness {
    pub source: String,
    pub connected: bool,
    /// Every watched table is loaded and the stream applied from the consistent point on.
    pub consistent: bool,
    pub lag_bytes: u64,
    /// The last failure's message (connection lost, server restarting, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Readiness {
    pub fn of(state: &OpsState) -> Readiness {
        let sources: Vec<SourceReadiness> = state
            .sources
            .iter()
            .map(|s| SourceReadiness {
                source: s.name.to_string(),
                connected: s.stats.is_connected(),
                consistent: s.watermarks.is_consistent(),
                lag_bytes: s.watermarks.lag_bytes(),
                last_error: s.stats.last_error(),
            })
            .collect();
        // Cut off from the cluster's bus, an instance would serve a replica that may have
        // stopped moving as if it were live.
        let bus = state.cluster.as_ref().is_none_or(|c| !c.redis_down.load(std::sync::atomic::Ordering::Relaxed));
        Readiness { ready: bus && sources.iter().all(|s| s.connected && s.consistent), sources }
    }
}

pub async fn readyz(State(state): State<Arc<OpsState>>) -> (StatusCode, Json<Readiness>) {
    let r = Readiness::of(&state);
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(r))
}
