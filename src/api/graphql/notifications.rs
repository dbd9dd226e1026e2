//! Notifications in GraphQL: contact points (`contactPoints`, `createContactPoint`,
//! `updateContactPoint`, `deleteContactPoint`, `testContactPoint`), the routing policy
//! (`notificationPolicy`, `setNotificationPolicy`), its mute timings (`muteTimings`,
//! `setMuteTiming`, `deleteMuteTiming`) and the outbox's log (`notifications`).
//!
//! Everything needs the `manage_notifications` permission (FORBIDDEN otherwise): contact
//! points hold where a company's people are reached. Secrets are write-only: a contact point
//! reads back with what may be shown and `secretsSet`, never the token, key or Slack URL.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use serde_json::Value as Json;

use super::errors::{Code, error};
use super::output::{enum_value, field, id_argument, json, numeric_id, text, timestamptz as time};
use super::resolve::Scope;
use crate::kpi::DefinitionError;
use crate::notify::Notifier;
use crate::notify::contact::{self, Channel, ChannelKind, ContactPointId};
use crate::notify::mute::MuteTiming;
use crate::notify::route::Policy;
use crate::notify::send::Outcome;
use crate::policy::{Permission, PolicyStore};
use crate::store::StoreError;
use crate::store::notifications::{ContactPointRow, NotificationFilter, NotificationRecord};

const CONTACT_POINT: &str = "ContactPoint";
const CONTACT_POINT_INPUT: &str = "ContactPointInput";
const KIND: &str = "ContactPointKind";
const NOTIFICATION: &str = "Notification";
const NOTIFICATION_WHERE: &str = "NotificationWhere";
const STATUS: &str = "NotificationStatus";
const TEST_RESULT: &str = "ContactPointTest";
const STATUSES: [&str; 6] = ["PENDING", "SENDING", "SENT", "DEAD", "SILENCED", "MUTED"];
/// Most rows `notifications` answers with.
const MAX_LIMIT: i64 = 1000;

/// What the resolvers need; requests carry it as data next to their `Scope`.
#[derive(Clone)]
pub struct NotifyService {
    pub notifier: Notifier,
    pub policy: PolicyStore,
}

impl std::fmt::Debug for NotifyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyService")
    }
}

struct TestOut(Outcome);

pub fn types() -> (Vec<Object>, Vec<InputObject>, Vec<Enum>) {
    let s = TypeRef::STRING;
    let contact_point = Object::new(CONTACT_POINT)
        .description("Where notifications go. Its secrets are never shown: `secretsSet` says whether it has them.")
        .field(field::<ContactPointRow>("id", TypeRef::named_nn(TypeRef::ID), |c| text(c.id.0.to_string())))
        .field(field::<ContactPointRow>("name", TypeRef::named_nn(s), |c| text(&c.name)))
        .field(field::<ContactPointRow>("kind", TypeRef::named_nn(KIND), |c| enum_value(&c.kind.name().to_uppercase())))
        .field(
            field::<ContactPointRow>("settings", TypeRef::named_nn("JSON"), |c| json(&c.settings))
                .description("What may be shown: URLs without credentials (a Slack URL only by its host), numbers."),
        )
        .field(field::<ContactPointRow>("secretsSet", TypeRef::named_nn(TypeRef::BOOLEAN), |c| {
            Some(FieldValue::value(c.secret.is_some()))
        }))
        .field(field::<ContactPointRow>("createdBy", TypeRef::named(s), |c| c.created_by.clone().and_then(text)))
        .field(field::<ContactPointRow>("updatedBy", TypeRef::named(s), |c| c.updated_by.clone().and_then(text)))
        .field(field::<ContactPointRow>("createdAt", TypeRef::named_nn("Timestamptz"), |c| time(c.created_at)))
        .field(field::<ContactPointRow>("updatedAt", TypeRef::named_nn("Timestamptz"), |c| time(c.updated_at)));
    let notification = Object::new(NOTIFICATION)
        .description("One notification in the outbox: written with the alert transition that caused it, then sent.")
        .field(field::<NotificationRecord>("id", TypeRef::named_nn(TypeRef::ID), |n| text(n.id.to_string())))
        .field(field::<NotificationRecord>("contactPointId", TypeRef::named_nn(TypeRef::ID), |n| {
            text(n.contact_point.0.to_string())
        }))
        .field(field::<NotificationRecord>("ruleId", TypeRef::named(TypeRef::ID), |n| {
            n.rule.and_then(|r| text(r.to_string()))
        }))
        .field(field::<NotificationRecord>("instance", TypeRef::named_nn(s), |n| text(&n.instance)))
        .field(
            field::<NotificationRecord>("kind", TypeRef::named_nn(s), |n| text(&n.kind))
                .description("`firing` or `resolved`."),
        )
        .field(field::<NotificationRecord>("status", TypeRef::named_nn(STATUS), |n| {
            enum_value(&n.status.to_uppercase())
        }))
        .field(field::<NotificationRecord>("attempts", TypeRef::named_nn(TypeRef::INT), |n| {
            Some(FieldValue::value(n.attempts))
        }))
        .field(
            field::<NotificationRecord>("repeats", TypeRef::named_nn(TypeRef::INT), |n| {
                Some(FieldValue::value(n.repeats))
            })
            .description("Sends started again because a restart found them in flight."),
        )
        .field(field::<NotificationRecord>("lastError", TypeRef::named(s), |n| n.last_error.clone().and_then(text)))
        .field(
            field::<NotificationRecord>("note", TypeRef::named(s), |n| n.note.clone().and_then(text))
                .description("Why it was not sent: the silence or the mute timing."),
        )
        .field(
            field::<NotificationRecord>("cause", TypeRef::named_nn(s), |n| text(&n.cause))
                .description("The transition's cause: `tx:<source>:<position>` or `due:<µs>`."),
        )
        .field(field::<NotificationRecord>("content", TypeRef::named_nn("JSON"), |n| json(&n.content)))
        .field(field::<NotificationRecord>("idempotencyKey", TypeRef::named_nn(s), |n| text(&n.idempotency_key)))
        .field(field::<NotificationRecord>("createdAt", TypeRef::named_nn("Timestamptz"), |n| time(n.created_at)))
        .field(field::<NotificationRecord>("nextAttemptAt", TypeRef::named_nn("Timestamptz"), |n| {
            time(n.next_attempt_at)
        }))
        .field(field::<NotificationRecord>("sentAt", TypeRef::named("Timestamptz"), |n| n.sent_at.and_then(time)));
    let test = Object::new(TEST_RESULT)
        .description("How a test message went.")
        .field(field::<TestOut>("ok", TypeRef::named_nn(TypeRef::BOOLEAN), |t| {
            Some(FieldValue::value(t.0 == Outcome::Sent))
        }))
        .field(
            field::<TestOut>("temporary", TypeRef::named_nn(TypeRef::BOOLEAN), |t| {
                Some(FieldValue::value(matches!(t.0, Outcome::Temporary { .. })))
            })
            .description("The failure would be retried for an alert (429, 5xx, a timeout)."),
        )
        .field(field::<TestOut>("error", TypeRef::named(s), |t| match &t.0 {
            Outcome::Sent => None,
            Outcome::Temporary { error, .. } | Outcome::Permanent { error } => text(error),
        }));
    let input = InputObject::new(CONTACT_POINT_INPUT)
        .description(
            "A contact point. `settings` by kind — WEBHOOK: `url`, `secret` (signs each body, HMAC-SHA256); SLACK: \
             `url` (the incoming webhook's); TWILIO: `accountSid`, `authToken`, optional `apiKeySid`, `from` or \
             `messagingServiceSid`, `to` (numbers in E.164), optional `baseUrl`; EMAIL: `host`, optional `port`, \
             `security` (`starttls` (default), `tls`, `none`), optional `username` and `password`, `from`, `to` \
             (addresses), optional `caCertificate` (PEM, for a private CA). On an update a secret left out keeps \
             its value.",
        )
        .field(InputValue::new("name", TypeRef::named_nn(s)))
        .field(InputValue::new("kind", TypeRef::named_nn(KIND)))
        .field(InputValue::new("settings", TypeRef::named_nn("JSON")));
    let filter = InputObject::new(NOTIFICATION_WHERE)
        .field(InputValue::new("ruleId", TypeRef::named(TypeRef::ID)))
        .field(InputValue::new("instance", TypeRef::named(s)).description("With `ruleId`: one alert's notifications."))
        .field(InputValue::new("status", TypeRef::named(STATUS)))
        .field(InputValue::new("contactPointId", TypeRef::named(TypeRef::ID)));
    let kinds = Enum::new(KIND).items(ChannelKind::ALL.iter().map(|k| EnumItem::new(k.name().to_uppercase())));
    let statuses = Enum::new(STATUS).items(STATUSES.map(EnumItem::new));
    (vec![contact_point, notification, test], vec![input, filter], vec![kinds, statuses])
}

pub fn query_fields(query: Object) -> Object {
    query
        .field(
            Field::new("contactPoints", TypeRef::named_nn_list_nn(CONTACT_POINT), |ctx| {
                FieldFuture::new(async move {
                    let service = authorised(&ctx)?.0;
                    let points = service.notifier.delivery.store.contact_points().await.map_err(stored)?;
                    Ok(Some(FieldValue::list(points.into_iter().map(FieldValue::owned_any))))
                })
            })
            .description("Where notifications go (needs `manage_notifications`)."),
        )
        .field(
            Field::new("notificationPolicy", TypeRef::named_nn("JSON"), |ctx| {
                FieldFuture::new(async move {
                    let service = authorised(&ctx)?.0;
                    json(&service.notifier.policy()).map(Some).ok_or_else(|| error(Code::Internal, "policy"))
                })
            })
            .description(
                "How alerts are routed (needs `manage_notifications`): `{ routes: [{ matchers, contactPoints, continue }] }`.",
            ),
        )
        .field(
            Field::new("muteTimings", TypeRef::named_nn("JSON"), |ctx| {
                FieldFuture::new(async move {
                    let service = authorised(&ctx)?.0;
                    json(&service.notifier.policy().mute_timings).map(Some).ok_or_else(|| error(Code::Internal, "policy"))
                })
            })
            .description(
                "The policy's mute timings (needs `manage_notifications`): `[{ name, timeZone, intervals: [{ weekdays, \
                 times: [{ start, end }] }] }]`.",
            ),
        )
        .field(
            Field::new("notifications", TypeRef::named_nn_list_nn(NOTIFICATION), |ctx| {
                FieldFuture::new(notifications(ctx))
            })
            .argument(InputValue::new("where", TypeRef::named(NOTIFICATION_WHERE)))
            .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)).description("100 unless given; at most 1000."))
            .description("The notification log, newest first (needs `manage_notifications`)."),
        )
}

pub fn mutation_fields(mutation: Object) -> Object {
    let id = || InputValue::new("id", TypeRef::named_nn(TypeRef::ID));
    let input = || InputValue::new("input", TypeRef::named_nn(CONTACT_POINT_INPUT));
    mutation
        .field(
            Field::new("createContactPoint", TypeRef::named_nn(CONTACT_POINT), |ctx| FieldFuture::new(create(ctx)))
                .argument(input())
                .description("Adds a contact point (needs `manage_notifications`)."),
        )
        .field(
            Field::new("updateContactPoint", TypeRef::named_nn(CONTACT_POINT), |ctx| FieldFuture::new(update(ctx)))
                .argument(id())
                .argument(input())
                .description("Replaces a contact point's name and settings; secrets left out are kept."),
        )
        .field(
            Field::new("deleteContactPoint", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| FieldFuture::new(delete(ctx)))
                .argument(id())
                .description("Deletes a contact point and its notifications; refused while a route names it."),
        )
        .field(
            Field::new("testContactPoint", TypeRef::named_nn(TEST_RESULT), |ctx| FieldFuture::new(test(ctx)))
                .argument(id())
                .description("Sends a test message now and says how it went."),
        )
        .field(
            Field::new("setNotificationPolicy", TypeRef::named_nn("JSON"), |ctx| FieldFuture::new(set_policy(ctx)))
                .argument(InputValue::new("policy", TypeRef::named_nn("JSON")))
                .description(
                    "Replaces the routing policy (its mute timings too, when it lists them): `{ routes: [{ matchers: [{ label, value, negated }], contactPoints: \
                     [id], continue, groupBy, groupWait, repeatInterval, muteTimings: [name] }], muteTimings: [...] }`. \
                     An alert goes to the first matching route's contact points (and on while `continue`); its labels \
                     include `alertname` and `severity`.",
                ),
        )
        .field(
            Field::new("setMuteTiming", TypeRef::named_nn("JSON"), |ctx| FieldFuture::new(set_mute_timing(ctx)))
                .argument(InputValue::new("timing", TypeRef::named_nn("JSON")))
                .description(
                    "Adds a mute timing, or replaces the one of the same name: `{ name, timeZone, intervals: [{ \
                     weekdays: [\"monday:friday\"], times: [{ start: \"22:00\", end: \"24:00\"}] }] }`. Routes name it \
                     in their `muteTimings`; while it holds they send nothing, and the log records `MUTED`.",
                ),
        )
        .field(
            Field::new("deleteMuteTiming", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                FieldFuture::new(delete_mute_timing(ctx))
            })
            .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)))
            .description("Deletes a mute timing; refused while a route names it; false when there was none."),
        )
}

fn authorised<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<(&'a Arc<NotifyService>, &'a Scope)> {
    let service =
        ctx.data::<Arc<NotifyService>>().map_err(|_| error(Code::Internal, "this server sends no notifications"))?;
    let scope = ctx.data::<Scope>()?;
    if !service.policy.current().policy.may(&scope.principal.role, Permission::ManageNotifications) {
        return Err(error(
            Code::Forbidden,
            format!(
                "role `{}` may not manage notifications (it needs the `manage_notifications` permission)",
                scope.principal.role
            ),
        ));
    }
    Ok((service, scope))
}

fn bad_input(e: &DefinitionError, prefix: &str) -> async_graphql::Error {
    let field = format!("{prefix}{}", e.field);
    error(Code::BadUserInput, format!("{field}: {}", e.message)).extend_with(|_, x| x.set("field", field.clone()))
}

fn stored(e: StoreError) -> async_graphql::Error {
    match e {
        StoreError::Duplicate(message) | StoreError::Limit(message) => error(Code::BadUserInput, message),
        e => {
            tracing::error!(error = %e, "notifications: the app database");
            error(Code::Internal, "the app database cannot be reached right now")
        }
    }
}

/// The input's name, kind and settings.
fn input(ctx: &ResolverContext<'_>) -> async_graphql::Result<(String, ChannelKind, Json)> {
    let input = ctx.args.try_get("input")?.object()?;
    let name = input.try_get("name")?.string()?.trim().to_string();
    contact::check_contact_name(&name).map_err(|e| bad_input(&e, "input."))?;
    let kind_value = input.try_get("kind")?;
    let kind_name = kind_value.enum_name()?;
    let kind = ChannelKind::parse(kind_name)
        .ok_or_else(|| error(Code::BadUserInput, format!("input.kind: `{kind_name}` is not a kind")))?;
    let settings = input.try_get("settings")?.as_value().clone().into_json()?;
    Ok((name, kind, settings))
}

/// Seals a channel's secrets, or says why it cannot.
fn seal(service: &NotifyService, channel: &Channel) -> async_graphql::Result<Vec<u8>> {
    service.notifier.seal(&channel.secrets()).map_err(|e| error(Code::BadUserInput, e.to_string()))
}

async fn create(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let (name, kind, settings) = input(&ctx)?;
    let channel = contact::parse(kind, &settings, None).map_err(|e| bad_input(&e, "input."))?;
    let secret = seal(service, &channel)?;
    let by = scope.principal.subject.as_deref();
    let store = &service.notifier.delivery.store;
    let row = store.insert_contact_point(&name, kind, &channel.settings(), Some(&secret), by).await.map_err(stored)?;
    service.notifier.wake();
    Ok(Some(FieldValue::owned_any(row)))
}

async fn update(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let id = ContactPointId(id_argument(&ctx, "id")?);
    let (name, kind, settings) = input(&ctx)?;
    let store = &service.notifier.delivery.store;
    let Some(old) = store.contact_point(id).await.map_err(stored)? else {
        return Err(error(Code::BadUserInput, format!("there is no contact point {}", id.0)));
    };
    if old.kind != kind {
        return Err(error(
            Code::BadUserInput,
            format!(
                "input.kind: contact point {} is a {} one; make a new contact point instead",
                id.0,
                old.kind.name()
            ),
        ));
    }
    let previous = service.notifier.delivery.channel(&old).ok();
    let channel = contact::parse(kind, &settings, previous.as_ref()).map_err(|e| bad_input(&e, "input."))?;
    let secret = seal(service, &channel)?;
    let by = scope.principal.subject.as_deref();
    let row = store
        .update_contact_point(id, &name, &channel.settings(), Some(&secret), by)
        .await
        .map_err(stored)?
        .ok_or_else(|| error(Code::BadUserInput, format!("there is no contact point {}", id.0)))?;
    service.notifier.wake();
    Ok(Some(FieldValue::owned_any(row)))
}

async fn delete(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, _) = authorised(&ctx)?;
    let id = ContactPointId(id_argument(&ctx, "id")?);
    if service.notifier.policy().routes.iter().any(|r| r.contact_points.contains(&id)) {
        return Err(error(
            Code::BadUserInput,
            format!("contact point {} is named by the notification policy: take it out of the routes first", id.0),
        ));
    }
    let deleted = service.notifier.delivery.store.delete_contact_point(id).await.map_err(stored)?;
    Ok(Some(FieldValue::value(deleted)))
}

async fn test(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let id = ContactPointId(id_argument(&ctx, "id")?);
    let outcome = service.notifier.test(id, scope.principal.subject.as_deref()).await.map_err(stored)?;
    let outcome = outcome.ok_or_else(|| error(Code::BadUserInput, format!("there is no contact point {}", id.0)))?;
    Ok(Some(FieldValue::owned_any(TestOut(outcome))))
}

async fn set_policy(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let value = ctx.args.try_get("policy")?.as_value().clone().into_json()?;
    // Mute timings are kept unless the new policy lists them (the page that edits routes does
    // not hold them).
    let keep = value.get("muteTimings").is_none();
    let mut policy: Policy =
        serde_json::from_value(value).map_err(|e| error(Code::BadUserInput, format!("policy: {e}")))?;
    if keep {
        policy.mute_timings = service.notifier.policy().mute_timings;
    }
    let stored_form = put_policy(service, scope, policy, "policy.").await?;
    Ok(json(&stored_form))
}

/// Checks a policy, stores it and puts it in force; what was stored.
async fn put_policy(service: &NotifyService, scope: &Scope, policy: Policy, at: &str) -> async_graphql::Result<Json> {
    let store = &service.notifier.delivery.store;
    let known: Vec<ContactPointId> = store.contact_points().await.map_err(stored)?.iter().map(|c| c.id).collect();
    policy.check(&known).map_err(|e| bad_input(&e, at))?;
    let stored_form = serde_json::to_value(&policy).expect("a policy serialises");
    store.set_notification_policy(&stored_form, scope.principal.subject.as_deref()).await.map_err(stored)?;
    service.notifier.set_policy(policy);
    Ok(stored_form)
}

async fn set_mute_timing(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let value = ctx.args.try_get("timing")?.as_value().clone().into_json()?;
    let mut timing: MuteTiming =
        serde_json::from_value(value).map_err(|e| error(Code::BadUserInput, format!("timing: {e}")))?;
    timing.name = timing.name.trim().to_string();
    timing.check("timing").map_err(|e| bad_input(&e, ""))?;
    let mut policy = service.notifier.policy();
    match policy.mute_timings.iter_mut().find(|m| m.name == timing.name) {
        Some(old) => *old = timing.clone(),
        None => policy.mute_timings.push(timing.clone()),
    }
    put_policy(service, scope, policy, "policy.").await?;
    Ok(json(&timing))
}

async fn delete_mute_timing(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, scope) = authorised(&ctx)?;
    let name = ctx.args.try_get("name")?.string()?.trim().to_string();
    let mut policy = service.notifier.policy();
    if let Some(i) = policy.routes.iter().position(|r| r.mute_timings.contains(&name)) {
        return Err(error(
            Code::BadUserInput,
            format!("mute timing `{name}` is named by route {i} of the notification policy: take it out first"),
        ));
    }
    let before = policy.mute_timings.len();
    policy.mute_timings.retain(|m| m.name != name);
    if policy.mute_timings.len() == before {
        return Ok(Some(FieldValue::value(false)));
    }
    put_policy(service, scope, policy, "policy.").await?;
    Ok(Some(FieldValue::value(true)))
}

async fn notifications(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (service, _) = authorised(&ctx)?;
    let mut filter = NotificationFilter { limit: 100, ..NotificationFilter::default() };
    if let Some(limit) = ctx.args.get("limit") {
        let n = limit.i64()?;
        if !(1..=MAX_LIMIT).contains(&n) {
            return Err(error(Code::BadUserInput, format!("limit: between 1 and {MAX_LIMIT}")));
        }
        filter.limit = n;
    }
    if let Some(w) = ctx.args.get("where").filter(|w| !w.is_null()) {
        let w = w.object()?;
        let id = |name: &str| -> async_graphql::Result<Option<i64>> {
            match w.get(name).filter(|v| !v.is_null()) {
                None => Ok(None),
                Some(v) => numeric_id(v.as_value())
                    .map(Some)
                    .ok_or_else(|| error(Code::BadUserInput, format!("where.{name} is not an id"))),
            }
        };
        filter.rule = id("ruleId")?;
        filter.contact_point = id("contactPointId")?.map(ContactPointId);
        filter.instance =
            w.get("instance").filter(|v| !v.is_null()).map(|v| v.string().map(str::to_string)).transpose()?;
        filter.status =
            w.get("status").filter(|v| !v.is_null()).map(|v| v.enum_name().map(str::to_lowercase)).transpose()?;
    }
    let rows = service.notifier.delivery.store.notifications(&filter).await.map_err(stored)?;
    Ok(Some(FieldValue::list(rows.into_iter().map(FieldValue::owned_any))))
}
