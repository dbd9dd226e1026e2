//! How a follower gets its first replica: from the leader, over HTTP, as of an exact bus entry.
//!
//! The leader's publisher pairs the replica with the last entry of each stream it has written
//! (the apply loop hands it the replica right after the events it includes, when no table is
//! loading and no transaction is half applied), so the follower reads each stream from the
//! entry after its mark and misses nothing, applies nothing twice. The body is the replica in
//! the checkpoint encoding. The route needs the cluster's shared secret: the replica is every
//! watched row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};

use super::bus::{Bootstrap, StreamMark};
use crate::auth::Secret;
use crate::change::SourceName;
use crate::checkpoint::{self, Loaded};
use crate::registry::Registry;

pub const PATH: &str = "/cluster/bootstrap";
const EPOCH: &str = "x-opslive-epoch";
const STREAMS: &str = "x-opslive-streams";
const TABLES: &str = "x-opslive-tables";

/// How long the leader waits for a settled replica (no table loading) before telling the
/// follower to come back.
const SETTLE: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct BootstrapApi {
    pub secret: Secret,
    /// To the publisher; closed (or absent) on an instance that does not lead.
    pub requests: Option<mpsc::Sender<oneshot::Sender<Bootstrap>>>,
    pub origins: HashMap<SourceName, String>,
    pub registry: Arc<Registry>,
}

pub fn router(api: BootstrapApi) -> axum::Router {
    axum::Router::new().route(PATH, axum::routing::get(serve)).with_state(api)
}

async fn serve(State(api): State<BootstrapApi>, headers: HeaderMap) -> Response {
    let expected = format!("Bearer {}", api.secret.expose());
    let given = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "the cluster secret is required\n").into_response();
    }
    let Some(requests) = api.requests.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this instance does not lead the cluster\n").into_response();
    };
    let (reply, answer) = oneshot::channel();
    if requests.send(reply).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "this instance does not lead the cluster\n").into_response();
    }
    let bootstrap = match tokio::time::timeout(SETTLE, answer).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "this instance no longer leads the cluster\n").into_response();
        }
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "a table is still loading; try again\n").into_response();
        }
    };
    let origins = api.origins.clone();
    let replica = bootstrap.replica.clone();
    let body = tokio::task::spawn_blocking(move || checkpoint::encode(&replica, &origins, Vec::new())).await;
    let body = match body {
        Ok(Ok((bytes, _))) => bytes,
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let tables: Vec<(u32, String)> = api.registry.tables().map(|t| (t.id.0, t.to_string())).collect();
    let mut response = body.into_response();
    let h = response.headers_mut();
    let json = |v: String| HeaderValue::from_str(&v).expect("JSON of names and ids is a valid header");
    h.insert(EPOCH, HeaderValue::from(bootstrap.epoch));
    h.insert(STREAMS, json(serde_json::to_string(&bootstrap.streams).expect("serialisable")));
    h.insert(TABLES, json(serde_json::to_string(&tables).expect("serialisable")));
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot reach the leader at {url}: {error}")]
    Unreachable { url: String, error: String },
    #[error("the leader at {url} answered {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error(
        "the leader watches other tables under the same ids ({detail}): every instance of a cluster must run the same configuration"
    )]
    Tables { detail: String },
    #[error("the leader's replica cannot be read: {0}")]
    Replica(String),
}

/// A follower's start: the leader's replica and where each stream is to be read from.
pub struct Fetched {
    pub loaded: Loaded,
    pub epoch: u64,
    pub streams: HashMap<SourceName, StreamMark>,
}

/// Fetches the replica from the leader at `url`.
pub async fn fetch(url: &str, secret: &Secret, registry: &Registry) -> Result<Fetched, BootstrapError> {
    let target = format!("{}{PATH}", url.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| BootstrapError::Unreachable { url: target.clone(), error: e.to_string() };
    // reqwest is built without a default TLS provider; the process uses ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(SETTLE + Duration::from_secs(60)).build().map_err(unreachable)?;
    let response = client.get(&target).bearer_auth(secret.expose()).send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(BootstrapError::Refused { url: target, status: status.as_u16(), body: body.trim().to_string() });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| BootstrapError::Replica(format!("no {name} header")))
    };
    let epoch: u64 = header(EPOCH)?.parse().map_err(|_| BootstrapError::Replica("a bad epoch".into()))?;
    let streams: HashMap<String, StreamMark> =
        serde_json::from_str(&header(STREAMS)?).map_err(|e| BootstrapError::Replica(e.to_string()))?;
    let tables: Vec<(u32, String)> =
        serde_json::from_str(&header(TABLES)?).map_err(|e| BootstrapError::Replica(e.to_string()))?;
    let ours: Vec<(u32, String)> = registry.tables().map(|t| (t.id.0, t.to_string())).collect();
    if tables != ours {
        let detail = tables
            .iter()
            .filter(|t| !ours.contains(t))
            .chain(ours.iter().filter(|t| !tables.contains(t)))
            .map(|(id, name)| format!("#{id} {name}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(BootstrapError::Tables { detail });
    }
    let body = response.bytes().await.map_err(unreachable)?;
    let loaded = checkpoint::decode(&body, target.clone().into(), registry, Instant::now())
        .map_err(|e| BootstrapError::Replica(e.to_string()))?;
    if !loaded.missing.is_empty() {
        return Err(BootstrapError::Replica(format!("{} tables were not in it", loaded.missing.len())));
    }
    let streams = streams.into_iter().map(|(k, v)| (SourceName::from(k.as_str()), v)).collect();
    Ok(Fetched { loaded, epoch, streams })
}
