//! The subscriptions `kpi(id)` and `kpis`: real streams over the runtime's board.
//!
//! Each follows the board (a `watch`, so a subscriber that falls behind skips to the newest
//! board, never queues) and yields when what the caller sees changes: for `kpi(id)` that KPI's
//! `seq` (or its becoming unreadable or deleted: then null), for `kpis` the `seq` of any KPI
//! the caller may read, or the set of them. A commit that changes no KPI the caller sees yields
//! nothing. Readability is judged again each time, under the policy current then.
//!
//! The WebSocket transport runs each stream on its own task and forwards every result, full,
//! through the connection's outbox (see `ws`).

use async_graphql::dynamic::{
    FieldValue, InputValue, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use futures_util::Stream;
use futures_util::stream;

use super::read::{KpiOut, builtin_argument, builtin_input, id_argument, readable, service, visible};
use super::types::KPI;
use crate::api::graphql::resolve::Scope;
use crate::auth::Principal;
use crate::kpi::{KpiBoard, KpiEntry, KpiId};
use crate::policy::{Policy, PolicyStore};

/// One result of a stream: owned, so it becomes a field value of any lifetime.
enum Answer {
    One(Option<std::sync::Arc<KpiEntry>>),
    All(Vec<std::sync::Arc<KpiEntry>>),
}

impl<'a> From<Answer> for FieldValue<'a> {
    fn from(answer: Answer) -> FieldValue<'a> {
        match answer {
            Answer::One(Some(e)) => FieldValue::owned_any(KpiOut(e)),
            Answer::One(None) => FieldValue::NULL,
            Answer::All(entries) => FieldValue::list(entries.into_iter().map(|e| FieldValue::owned_any(KpiOut(e)))),
        }
    }
}

type Item = async_graphql::Result<Answer>;

/// What a caller sees of the board: a key that changes exactly when the answer does, and the
/// answer.
type Pick<K> = fn(&KpiBoard, &Policy, &Principal, Want) -> (K, Answer);

/// What a stream asked for: one KPI, or all of one kind (see `kpis(builtin:)`).
#[derive(Clone, Copy)]
struct Want {
    id: Option<KpiId>,
    builtin: Option<bool>,
}

fn one(board: &KpiBoard, policy: &Policy, principal: &Principal, want: Want) -> (Option<u64>, Answer) {
    let entry = want.id.and_then(|id| board.kpis.get(&id)).filter(|e| readable(e, policy, principal));
    (entry.map(|e| e.seq), Answer::One(entry.cloned()))
}

fn all(board: &KpiBoard, policy: &Policy, principal: &Principal, want: Want) -> (Vec<(KpiId, u64)>, Answer) {
    let entries = visible(board, policy, principal, want.builtin);
    let key = entries.iter().map(|e| (e.record.id, e.seq)).collect();
    (key, Answer::All(entries.into_iter().cloned().collect()))
}

struct Follow<K> {
    board: tokio::sync::watch::Receiver<std::sync::Arc<KpiBoard>>,
    policy: PolicyStore,
    principal: Principal,
    want: Want,
    last: Option<K>,
}

/// The answer now, then again each time its key changes; ends when the runtime stops.
fn follow<K: PartialEq + Send + Sync + 'static>(start: Follow<K>, pick: Pick<K>) -> impl Stream<Item = Item> + Send {
    stream::unfold(start, move |mut f| async move {
        loop {
            let board = f.board.borrow_and_update().clone();
            let (key, answer) = pick(&board, &f.policy.current().policy, &f.principal, f.want);
            if f.last.as_ref() != Some(&key) {
                f.last = Some(key);
                return Some((Ok(answer), f));
            }
            f.board.changed().await.ok()?;
        }
    })
}

pub fn fields(subscription: Subscription) -> Subscription {
    subscription
        .field(
            SubscriptionField::new("kpi", TypeRef::named(KPI), |ctx| {
                SubscriptionFieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let principal = ctx.data::<Scope>()?.principal.clone();
                    let id = Some(id_argument(&ctx)?);
                    let start = Follow {
                        board: service.hub.board.clone(),
                        policy: service.policy.clone(),
                        principal,
                        want: Want { id, builtin: None },
                        last: None,
                    };
                    Ok(follow(start, one))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .description(
                "One KPI now, and again each time its value changes (`seq` grows); null when it does not exist or \
                 your role may not read it. `extensions.seq` counts this subscription's results.",
            ),
        )
        .field(
            SubscriptionField::new("kpis", TypeRef::named_nn_list_nn(KPI), |ctx| {
                SubscriptionFieldFuture::new(async move {
                    let service = service(&ctx)?;
                    let principal = ctx.data::<Scope>()?.principal.clone();
                    let start = Follow {
                        board: service.hub.board.clone(),
                        policy: service.policy.clone(),
                        principal,
                        want: Want { id: None, builtin: builtin_argument(&ctx) },
                        last: None,
                    };
                    Ok(follow(start, all))
                })
            })
            .argument(builtin_input())
            .description("The KPIs your role may read, again each time one of them changes or the set changes."),
        )
}
