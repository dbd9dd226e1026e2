//! The `alerts(where:)` subscription: a real stream over the alert runtime's board.
//!
//! It follows the board (a `watch`: a subscriber that falls behind skips to the newest board,
//! never queues) and yields when what the caller sees changes — an alert appears, changes
//! state, value, summary, acknowledgement or silence, or goes. Readability is judged again
//! each time, under the policy, KPIs and replica current then. The WebSocket transport
//! forwards every result, full, through the connection's outbox.

use async_graphql::dynamic::{
    FieldValue, InputValue, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use futures_util::stream;

use super::read::{Narrow, Reader, Seen, alert_values, service};
use super::types::{ALERT, WHERE};
use crate::api::graphql::resolve::Scope;

type Key = Vec<Seen>;

pub fn fields(subscription: Subscription) -> Subscription {
    subscription.field(
        SubscriptionField::new("alerts", TypeRef::named_nn_list_nn(ALERT), |ctx| {
            SubscriptionFieldFuture::new(async move {
                let service = service(&ctx)?.clone();
                let principal = ctx.data::<Scope>()?.principal.clone();
                let narrow = Narrow::read(&ctx)?;
                let start = (service.hub.board.clone(), None::<Key>);
                Ok(stream::unfold(start, move |(mut board_rx, last)| {
                    let (service, principal, narrow) = (service.clone(), principal.clone(), narrow.clone());
                    async move {
                        let mut last = last;
                        loop {
                            let board = board_rx.borrow_and_update().clone();
                            let (kpis, policy) = (service.kpis.current(), service.policy.current().policy);
                            let replica = service.replica.borrow().clone();
                            let reader =
                                Reader { policy: &policy, principal: &principal, kpis: &kpis, replica: &replica };
                            let now = chrono::Utc::now().timestamp_micros();
                            let (key, values) = alert_values(&board, &reader, &narrow, now);
                            if last.as_ref() != Some(&key) {
                                return Some((Ok(FieldValue::list(values)), (board_rx, Some(key))));
                            }
                            board_rx.changed().await.ok()?;
                            last = last.take();
                        }
                    }
                }))
            })
        })
        .argument(InputValue::new("where", TypeRef::named(WHERE)))
        .description(
            "The alerts pending or firing that your role may read, now and again each time one appears, changes or \
             goes. `extensions.seq` counts this subscription's results.",
        ),
    )
}
