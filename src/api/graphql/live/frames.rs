//! Live query messages: the API's side of the live runtime ([`crate::live::runtime`]). Each
//! update of a distinct query is written here once, as GraphQL JSON in the form its
//! subscribers asked for, and left in each subscriber's outbox.
//!
//! - Full form (plain subscriptions): the whole result in every message. An update whose
//!   answer reads the same as the last one (a change to columns or groups the client did not
//!   select) is not sent.
//! - Patch form (`…Patches`): a reset, then patches. A client with too many patches waiting
//!   gets a reset in their place (the [`Outbox`] says when).
//!
//! Every message carries `asOf` (the last transaction the result reflects) and `seq` (the
//! number of this result's updates so far).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::compile::{LiveRequest, Render};
use super::outbox::{Delivery, Kind, Outbox, Pushed};
use super::render::{self, Json, UpdateBody};
use crate::as_of::AsOf;
use crate::live::{self, Current, LiveError, LiveRuntime, LiveSpec, LiveStats, RowsDiff, Shared};
use crate::pipeline::Batch;
use crate::query::{Clock, SystemClock};
use crate::replica::Replica;

/// The handle connections register their subscriptions with.
#[derive(Clone, Debug)]
pub struct LiveHub {
    runtime: LiveRuntime<GraphqlFrames>,
    pub stats: Arc<LiveStats>,
}

impl LiveHub {
    /// Starts the live runtime on the batches of an apply loop whose replica is `replica` now.
    pub fn start(replica: Arc<Replica>, batches: mpsc::Receiver<Arc<Batch>>, cancel: CancellationToken) -> LiveHub {
        LiveHub::start_with_clock(replica, batches, cancel, Arc::new(SystemClock))
    }

    /// Like [`LiveHub::start`], reading "now" for time-relative filters from `clock`.
    pub fn start_with_clock(
        replica: Arc<Replica>,
        batches: mpsc::Receiver<Arc<Batch>>,
        cancel: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> LiveHub {
        let stats = Arc::new(LiveStats::default());
        let frames = GraphqlFrames { stats: stats.clone() };
        LiveHub { runtime: LiveRuntime::start(replica, batches, cancel, clock, frames, stats.clone()), stats }
    }

    /// Registers a subscription; its first result is in the outbox when this returns `Ok`.
    pub async fn subscribe(&self, request: LiveRequest, outbox: &Arc<Outbox>, sub: Arc<str>) -> Result<(), LiveError> {
        self.runtime.subscribe(request, Subscriber { outbox: outbox.clone(), sub }).await
    }

    pub fn stop(&self, outbox: &Outbox, sub: Arc<str>) {
        self.runtime.stop(outbox.id, sub);
    }

    /// The connection closed: every subscription of it ends.
    pub fn gone(&self, outbox: &Outbox) {
        self.runtime.gone(outbox.id);
    }
}

/// One subscription of one connection.
pub struct Subscriber {
    outbox: Arc<Outbox>,
    sub: Arc<str>,
}

/// Writes live results as GraphQL messages, once per distinct query.
pub struct GraphqlFrames {
    stats: Arc<LiveStats>,
}

impl live::Render for GraphqlFrames {
    type Request = LiveRequest;
    type Subscriber = Subscriber;
    /// The last full-form message: an update whose answer is the same is not sent.
    type Memo = Option<FullPayload>;

    fn spec(request: &LiveRequest) -> &LiveSpec {
        &request.spec
    }

    fn share_key(request: &LiveRequest) -> &str {
        &request.share
    }

    fn connection(subscriber: &Subscriber) -> (u64, &str) {
        (subscriber.outbox.id, &subscriber.sub)
    }

    fn first(&self, shared: &mut Shared<Self>, current: Current<'_>, as_of: AsOf, to: &Subscriber) {
        let (payload, kind) = match (&shared.request.render, current) {
            (Render::Patches { fields, .. }, Current::Rows(all)) => {
                let body = UpdateBody::Reset(all);
                (patches_payload(&shared.request.field, fields, &body, as_of, shared.seq, all.len()), Kind::Reset)
            }
            (_, current) => {
                let payload = full_payload(&shared.request, current, as_of, shared.seq);
                shared.memo.get_or_insert_with(|| payload.clone());
                (payload.text, Kind::Full)
            }
        };
        to.outbox.push(&to.sub, Delivery::Next { payload, kind });
        self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
    }

    fn changed(&self, shared: &mut Shared<Self>, current: Current<'_>, reset: bool, rows: &RowsDiff, as_of: AsOf) {
        match &shared.request.render {
            Render::Patches { fields, key: key_columns } => {
                let Current::Rows(all) = current else { return };
                if rows.is_empty() && !reset {
                    return;
                }
                shared.seq += 1;
                let body =
                    if reset { UpdateBody::Reset(all) } else { UpdateBody::Patch { diff: rows, key: key_columns } };
                let payload = patches_payload(&shared.request.field, fields, &body, as_of, shared.seq, all.len());
                let mut reset_payload: Option<Arc<str>> = None;
                self.stats.payloads.fetch_add(1, Ordering::Relaxed);
                for s in &shared.subscribers {
                    self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
                    let kind = if reset { Kind::Reset } else { Kind::Patch };
                    if s.outbox.push(&s.sub, Delivery::Next { payload: payload.clone(), kind }) == Pushed::NeedsReset {
                        let r = reset_payload.get_or_insert_with(|| {
                            let body = UpdateBody::Reset(all);
                            patches_payload(&shared.request.field, fields, &body, as_of, shared.seq, all.len())
                        });
                        self.stats.resets_for_slow_clients.fetch_add(1, Ordering::Relaxed);
                        s.outbox.replace(&s.sub, Delivery::Next { payload: r.clone(), kind: Kind::Reset });
                    }
                }
            }
            _ => {
                let payload = full_payload(&shared.request, current, as_of, shared.seq + 1);
                // The same answer again (a change to columns or groups the client did not
                // select): nothing it shows changed, so nothing is sent.
                if !reset && shared.memo.as_ref().is_some_and(|last| last.data() == payload.data()) {
                    return;
                }
                shared.seq += 1;
                shared.memo = Some(payload.clone());
                self.stats.payloads.fetch_add(1, Ordering::Relaxed);
                fan_out(shared, Delivery::Next { payload: payload.text, kind: Kind::Full }, &self.stats);
            }
        }
    }

    fn not_ready(&self, shared: &mut Shared<Self>, reason: &str, as_of: AsOf) {
        shared.seq += 1;
        shared.memo = None;
        let payload = error_payload(reason, "NOT_READY", as_of, shared.seq).text;
        // An error result stands for the whole state, like a reset.
        fan_out(shared, Delivery::Next { payload, kind: Kind::Reset }, &self.stats);
    }

    fn ended(&self, shared: &Shared<Self>, reason: &str) {
        fan_out(shared, Delivery::Error(errors(reason, "SCHEMA_CHANGED")), &self.stats);
    }

    fn closing(&self, shared: &Shared<Self>) {
        fan_out(shared, Delivery::Error(errors("the server is shutting down", "NOT_READY")), &self.stats);
    }
}

fn fan_out(shared: &Shared<GraphqlFrames>, delivery: Delivery, stats: &LiveStats) {
    for s in &shared.subscribers {
        s.outbox.push(&s.sub, delivery.clone());
    }
    stats.deliveries.fetch_add(shared.subscribers.len() as u64, Ordering::Relaxed);
}

const TOO_MANY: &str = "more than 10000 rows match this live query: narrow `where` or set `limit`";

/// A full-form message and where its result ends (before `extensions`, which change with every
/// transaction).
#[derive(Clone)]
pub struct FullPayload {
    text: Arc<str>,
    data_end: usize,
}

impl FullPayload {
    fn data(&self) -> &str {
        &self.text[..self.data_end]
    }
}

/// `{"data":{field: result},"extensions":{"asOf":…,"seq":…}}`
fn full_payload(request: &LiveRequest, current: Current<'_>, as_of: AsOf, seq: u64) -> FullPayload {
    if let Current::Rows(rows) = &current
        && rows.len() > super::super::arguments::MAX_ROWS
    {
        return error_payload(TOO_MANY, "BAD_USER_INPUT", as_of, seq);
    }
    let mut out = Json::new();
    out.raw("{\"data\":{");
    out.string(&request.field);
    out.raw(":");
    match (&request.render, current) {
        (Render::Rows(fields), Current::Rows(rows)) => out.rows(fields, rows),
        (Render::Row(fields), Current::Row(Some(row))) => out.row(fields, row),
        (Render::Groups { fields, group_by, measures }, Current::Groups(groups)) => {
            out.groups(fields, &groups, group_by, measures)
        }
        _ => {
            out.raw("null");
        }
    }
    out.raw("}");
    let data_end = out.0.len();
    out.raw(",\"extensions\":");
    out.extensions(as_of, seq);
    out.raw("}");
    FullPayload { text: Arc::from(out.0), data_end }
}

fn patches_payload(
    field: &str,
    fields: &super::projection::Fields<super::projection::UpdateField>,
    body: &UpdateBody<'_>,
    as_of: AsOf,
    seq: u64,
    total: usize,
) -> Arc<str> {
    if total > super::super::arguments::MAX_ROWS {
        return error_payload(TOO_MANY, "BAD_USER_INPUT", as_of, seq).text;
    }
    let mut out = Json::new();
    out.raw("{\"data\":{");
    out.string(field);
    out.raw(":");
    render::update(&mut out, fields, body, as_of, seq);
    out.raw("}}");
    Arc::from(out.0)
}

fn error_payload(message: &str, code: &str, as_of: AsOf, seq: u64) -> FullPayload {
    let mut out = Json::new();
    out.raw("{\"data\":null,\"errors\":");
    out.raw(&errors(message, code));
    let data_end = out.0.len();
    out.raw(",\"extensions\":");
    out.extensions(as_of, seq);
    out.raw("}");
    FullPayload { text: Arc::from(out.0), data_end }
}

/// A JSON array of one GraphQL error with a code.
pub fn errors(message: &str, code: &str) -> Arc<str> {
    let mut out = Json::new();
    out.raw("[{\"message\":");
    out.string(message);
    out.raw(",\"extensions\":{\"code\":");
    out.string(code);
    out.raw("}}]");
    Arc::from(out.0)
}
