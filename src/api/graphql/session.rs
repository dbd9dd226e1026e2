//! One client's operations, whatever carries them: a WebSocket connection or an SSE stream.
//!
//! A session runs each operation the way every transport must — parsed once, the role's schema
//! chosen, subscriptions compiled by async-graphql and handed to the live runtime, the change
//! log or a forwarding task; queries and mutations executed and answered once — under the
//! per-connection limits (`[limits] subscriptions_per_connection`, `subscribes_per_second`),
//! and ends them all together when the client goes. Results of open operations go to the
//! session's [`Outbox`]; the transport only frames and writes them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use async_graphql::parser::types::OperationType;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::task::AbortHandle;

use super::GraphqlState;
use super::admission::SubscribeRate;
use super::errors;
use super::live::outbox::{Kind, Pushed};
use super::live::{Delivery, Handover, LiveSlot, Outbox};
use super::resolve::Scope;
use crate::auth::Principal;
use crate::live::LiveError;

/// How an operation was answered.
#[derive(Debug)]
pub enum Answer {
    /// It is open: its results come through the outbox, until an error (or, for a stream that
    /// ends, [`Delivery::Complete`]).
    Open,
    /// It was executed once: this result (a GraphQL response as JSON), then complete.
    Once(String),
    /// It was refused: a JSON array of GraphQL errors.
    Refused(String),
}

pub struct Session {
    pub state: Arc<GraphqlState>,
    pub outbox: Arc<Outbox>,
    /// Ids of the operations that are open.
    open: HashSet<Arc<str>>,
    /// The tasks of the open operations answered by a stream of their own (a KPI
    /// subscription's, a change stream's).
    streams: HashMap<Arc<str>, AbortHandle>,
    /// Paces subscribes (`[limits] subscribes_per_second`).
    rate: SubscribeRate,
}

impl Session {
    pub fn new(state: Arc<GraphqlState>) -> Session {
        let outbox = Outbox::with_cap(state.admission.limits.max_pending_bytes);
        let rate = SubscribeRate::new(&state.admission.limits, std::time::Instant::now());
        Session { state, outbox, open: HashSet::new(), streams: HashMap::new(), rate }
    }

    pub fn is_open(&self, id: &str) -> bool {
        self.open.contains(id)
    }

    /// The transport delivered an operation's last message (an error, or complete).
    pub fn ended(&mut self, id: &str) {
        self.open.remove(id);
        if let Some(task) = self.streams.remove(id) {
            task.abort();
        }
    }

    /// Whether a new operation may start now; `Err` says which limit refuses it (an error
    /// with code `RATE_LIMITED`, in each transport's terms).
    pub fn admit(&mut self) -> Result<(), String> {
        let limits = &self.state.admission.limits;
        if self.open.len() >= limits.subscriptions_per_connection {
            let most = limits.subscriptions_per_connection;
            self.state.admission.stats.refused_subscriptions.fetch_add(1, Relaxed);
            return Err(format!(
                "at most {most} operations per connection (limits.subscriptions_per_connection): complete one first"
            ));
        }
        if !self.rate.try_take(std::time::Instant::now()) {
            let per_second = limits.subscribes_per_second;
            self.state.admission.stats.refused_rate.fetch_add(1, Relaxed);
            return Err(format!(
                "more than {per_second} subscribes per second on this connection \
                 (limits.subscribes_per_second): subscribe again shortly"
            ));
        }
        Ok(())
    }

    /// Runs one operation: a subscription is registered (its results come through the outbox);
    /// anything else is executed and answered once.
    pub async fn run(&mut self, principal: &Principal, id: Arc<str>, request: async_graphql::Request) -> Answer {
        let answer = self.start(principal, id.clone(), request).await;
        if !matches!(answer, Answer::Open) {
            // A pace is kept only for an operation that is open.
            self.outbox.pace(&id, None);
        }
        answer
    }

    async fn start(&mut self, principal: &Principal, id: Arc<str>, mut request: async_graphql::Request) -> Answer {
        // Parsed once: the request keeps the document for its execution.
        let name = request.operation_name.clone();
        let operation = match request.parsed_query() {
            Ok(document) => super::operation_type(document, name.as_deref()),
            Err(e) => return Answer::Refused(errors_json(errors::Code::ParseFailed, &e.message)),
        };
        let is_subscription = operation == Some(OperationType::Subscription);
        let pace = match pace_of(&request) {
            Ok(pace) => pace,
            Err(message) => return Answer::Refused(errors_json(errors::Code::BadUserInput, &message)),
        };
        let (schema, replica) = match self.state.role_schema(principal) {
            Ok(found) => found,
            Err((_, code, message)) => return Answer::Refused(errors_json(code, &message)),
        };
        let scope = Scope::new(principal.clone(), replica.clone());
        let request = self.state.with_data(request.data(scope));
        if !is_subscription {
            let mut response = schema.execute(request).await;
            errors::label(&mut response);
            return Answer::Once(serde_json::to_string(&response).unwrap_or_else(|_| "{}".into()));
        }
        // Set before anything can be pushed for `id` (and cleared for an id used again).
        self.outbox.pace(&id, pace);
        let slot = Arc::new(LiveSlot::default());
        let mut stream = schema.execute_stream(request.data(slot.clone()));
        // A live field hands its query over and ends its stream at once (no result); a
        // streaming field answers its first result; either may fail instead.
        let mut failure = None;
        match stream.next().await {
            Some(mut response) if !response.errors.is_empty() => {
                errors::label(&mut response);
                failure = Some(response);
            }
            Some(first) => {
                let task = tokio::spawn(forward(first, stream, self.outbox.clone(), id.clone()));
                self.opened(id, Some(task.abort_handle()));
                return Answer::Open;
            }
            None => {}
        }
        drop(stream);
        let live = match (failure, slot.take()) {
            (Some(response), _) => {
                return Answer::Refused(serde_json::to_string(&response.errors).unwrap_or_else(|_| "[]".into()));
            }
            (None, Some(Handover::Live(live))) => live,
            (None, Some(Handover::Changes(request))) => {
                let Some(feed) = self.state.changes.clone() else {
                    return Answer::Refused(errors_json(
                        errors::Code::Internal,
                        "change streams are not running on this server",
                    ));
                };
                let task =
                    tokio::spawn(super::changes::stream::follow(*request, feed, self.outbox.clone(), id.clone()));
                self.opened(id, Some(task.abort_handle()));
                return Answer::Open;
            }
            (None, None) => {
                return Answer::Refused(errors_json(
                    errors::Code::BadRequest,
                    "the subscription selects no live field",
                ));
            }
        };
        let Some(hub) = self.state.live.clone() else {
            return Answer::Refused(errors_json(errors::Code::Internal, "live queries are not running on this server"));
        };
        match hub.subscribe(*live, &self.outbox, id.clone()).await {
            Ok(()) => {
                self.opened(id, None);
                Answer::Open
            }
            Err(LiveError::NotReady(reason)) => Answer::Refused(errors_json(errors::Code::NotReady, &reason)),
            Err(LiveError::Invalid(reason)) => Answer::Refused(errors_json(errors::Code::BadUserInput, &reason)),
        }
    }

    /// Holds `id` open for an answer left in the outbox (a query over an SSE stream), until the
    /// transport writes its `complete`.
    pub fn hold(&mut self, id: Arc<str>) {
        self.opened(id, None);
    }

    fn opened(&mut self, id: Arc<str>, task: Option<AbortHandle>) {
        if let Some(task) = task {
            self.streams.insert(id.clone(), task);
        }
        self.open.insert(id);
    }

    /// The client no longer wants operation `id`; whether it was open.
    pub fn stop(&mut self, id: &str) -> bool {
        let Some(id) = self.open.take(id) else { return false };
        if let Some(task) = self.streams.remove(&id) {
            task.abort();
        }
        if let Some(hub) = &self.state.live {
            hub.stop(&self.outbox, id.clone());
        }
        self.outbox.forget(&id);
        true
    }

    /// Ends every open operation (the role's policy changed, the token expired); returns their
    /// ids, for the transport to tell the client.
    pub fn stop_all(&mut self) -> Vec<Arc<str>> {
        let open: Vec<Arc<str>> = self.open.iter().cloned().collect();
        for id in &open {
            self.stop(id);
        }
        open
    }

    /// The client is gone: everything ends and the outbox takes no more.
    pub fn close(&mut self) {
        for (_, task) in self.streams.drain() {
            task.abort();
        }
        self.open.clear();
        if let Some(hub) = &self.state.live {
            hub.gone(&self.outbox);
        }
        self.outbox.close();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("outbox", &self.outbox.id).field("open", &self.open.len()).finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// Forwards a streaming subscription's results to the outbox, each a full result that
/// replaces an unsent older one, numbered in `extensions.seq` (from 1) so a client can tell
/// that it skipped some. Ends with the stream or the connection.
async fn forward(
    first: async_graphql::Response,
    mut rest: BoxStream<'static, async_graphql::Response>,
    outbox: Arc<Outbox>,
    id: Arc<str>,
) {
    let mut next = Some(first);
    let mut seq: u64 = 0;
    while let Some(mut response) = next {
        seq += 1;
        errors::label(&mut response);
        response.extensions.insert("seq".into(), async_graphql::Value::from(seq));
        let payload = match serde_json::to_string(&response) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a subscription result");
                return;
            }
        };
        if outbox.push(&id, Delivery::Next { payload: Arc::from(payload), kind: Kind::Full }) == Pushed::Closed {
            return;
        }
        next = rest.next().await;
    }
}

/// Why a live connection or stream must end, or its operations be dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The token's `exp` passed.
    Expired,
    /// The token, or its subject, was revoked: why.
    Revoked(String),
    /// The role's rules changed: its operations were compiled under the old ones.
    PolicyChanged,
    /// The policy store is gone: the server is stopping.
    Closed,
}

/// Watches what ends a client's live work, whatever carries it: its token's expiry, a
/// revocation that covers it, and a policy reload that changes its role's rules (another
/// role's edit, or a table added, ends nothing).
pub struct Vigil {
    state: Arc<GraphqlState>,
    principal: Principal,
    expiry: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    revoked: tokio::sync::watch::Receiver<u64>,
    policy: tokio::sync::watch::Receiver<crate::policy::store::Current>,
    /// The rules the client's operations were compiled under.
    rules: Arc<crate::policy::Policy>,
}

impl Vigil {
    /// Starts watching; `Err` says why the token is already revoked.
    pub fn new(state: Arc<GraphqlState>, principal: &Principal) -> Result<Vigil, String> {
        // Subscribed before the check, so a revocation made since authentication is not missed.
        let revoked = state.auth.revocations().watch();
        if let Err(e) = state.auth.still_valid(principal) {
            return Err(e.to_string());
        }
        let mut policy = state.policy.subscribe();
        let rules = policy.borrow_and_update().policy.clone();
        let expiry = Box::pin(expiry(principal.expires_at));
        Ok(Vigil { state, principal: principal.clone(), expiry, revoked, policy, rules })
    }

    /// The reasons to end as they come, as a stream that keeps its waits registered between
    /// polls (a transport's loop polls it once per message it writes).
    pub fn endings(self) -> impl futures_util::Stream<Item = Ending> {
        futures_util::stream::unfold(self, |mut vigil| async move {
            let ending = vigil.ending().await;
            Some((ending, vigil))
        })
    }

    /// Resolves with the next reason to end; changes that concern someone else are skipped.
    async fn ending(&mut self) -> Ending {
        loop {
            tokio::select! {
                () = &mut self.expiry => return Ending::Expired,
                Ok(()) = self.revoked.changed() => {
                    if let Err(e) = self.state.auth.still_valid(&self.principal) {
                        return Ending::Revoked(e.to_string());
                    }
                }
                changed = self.policy.changed() => {
                    if changed.is_err() {
                        return Ending::Closed;
                    }
                    let now = self.policy.borrow_and_update().policy.clone();
                    let same = now.same_rules(&self.rules, &self.principal.role);
                    self.rules = now;
                    if !same {
                        return Ending::PolicyChanged;
                    }
                }
            }
        }
    }
}

/// Resolves when a token whose `exp` is `expires_at` expires (never, without one).
async fn expiry(expires_at: Option<i64>) {
    let at = expires_at.map(|at| {
        let now = chrono::Utc::now().timestamp();
        tokio::time::Instant::now() + std::time::Duration::from_secs(at.saturating_sub(now).max(0) as u64)
    });
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A JSON array of one GraphQL error with `code`.
pub fn errors_json(code: errors::Code, message: &str) -> String {
    super::live::frames::errors(message, code.as_str()).to_string()
}

/// `extensions.minIntervalMs` of a subscription: the least time between two of its results
/// (see [`Outbox::pace`]); absent or 0, every result goes at once.
fn pace_of(request: &async_graphql::Request) -> Result<Option<std::time::Duration>, String> {
    let Some(value) = request.extensions.get("minIntervalMs") else {
        return Ok(None);
    };
    let max = super::live::outbox::MAX_PACE;
    let pace = match value {
        async_graphql::Value::Number(n) => n.as_u64().map(std::time::Duration::from_millis),
        _ => None,
    };
    match pace {
        Some(pace) if pace <= max => Ok(Some(pace)),
        _ => Err(format!(
            "extensions.minIntervalMs must be a whole number of milliseconds from 0 to {}, not {value}",
            max.as_millis()
        )),
    }
}
