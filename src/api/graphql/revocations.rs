//! Revoking tokens before they expire (`revokeToken`, `revokeSubject`) and the record of what
//! was revoked (`tokenRevocations`), for roles with the `revoke_tokens` permission.
//!
//! A revocation is written to the app database first, so it survives a restart, and then added
//! to the authenticator's list: from then on the token is refused on every new request, and
//! every open live connection that carries it is closed with 4403 (the connections watch the
//! list, [`crate::auth::Revocations::watch`]).

use std::sync::Arc;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};

use super::errors::{Code, error};
use super::output::{field, text, timestamptz as time};
use super::resolve::Scope;
use crate::auth::Revocations;
use crate::policy::{Permission, PolicyStore};
use crate::store::revocations::{Revocation, RevokeRequest, Revoked};
use crate::store::{Store, StoreError};

const REVOCATION: &str = "TokenRevocation";
/// Longest `jti`, `sub` or reason accepted, in characters: ids are short, and a reason is a line.
const MAX_TEXT: usize = 500;

/// How often the app database is read again for revocations made by another instance.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// What the revocation resolvers need.
#[derive(Clone)]
pub struct RevocationService {
    pub store: Store,
    pub policy: PolicyStore,
    pub revoked: Arc<Revocations>,
    /// Tells the cluster's other instances at once (they also read the app database every
    /// [`FOLLOW_INTERVAL`]).
    pub announcer: crate::announce::Announcer,
}

impl std::fmt::Debug for RevocationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationService")
    }
}

impl RevocationService {
    /// Fills the authenticator's list from the app database (at start).
    pub async fn load(&self) -> Result<usize, StoreError> {
        let all = self.store.revocations().await?;
        for r in &all {
            remember(&self.revoked, r);
        }
        Ok(all.len())
    }

    /// Reads the app database every [`FOLLOW_INTERVAL`], so that a revocation made by another
    /// instance sharing it closes this instance's connections too (within that interval). A
    /// read that fails is logged and tried again at the next tick; what is known stays.
    pub async fn follow(self, cancel: tokio_util::sync::CancellationToken) {
        // The first read is the one at start (`load`), not a tick now.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FOLLOW_INTERVAL, FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => return,
            }
            match self.load().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("revocations: the app database answers again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "revocations: cannot read the app database; retrying");
                }
                Err(_) => {}
            }
        }
    }
}

fn remember(list: &Revocations, r: &Revocation) {
    match &r.revoked {
        Revoked::Token(jti) => list.revoke_token(jti),
        Revoked::Subject { subject, issued_before } => list.revoke_subject(subject, *issued_before),
    }
}

pub fn types() -> Vec<Object> {
    vec![
        Object::new(REVOCATION)
            .description("A revocation: one token by its `jti`, or every token of a subject issued up to a time.")
            .field(field::<Revocation>("id", TypeRef::named_nn(TypeRef::ID), |r| text(r.id.to_string())))
            .field(
                field::<Revocation>("jti", TypeRef::named(TypeRef::STRING), |r| match &r.revoked {
                    Revoked::Token(jti) => text(jti),
                    Revoked::Subject { .. } => None,
                })
                .description("The revoked token's id, for a revocation of one token."),
            )
            .field(
                field::<Revocation>("sub", TypeRef::named(TypeRef::STRING), |r| match &r.revoked {
                    Revoked::Subject { subject, .. } => text(subject),
                    Revoked::Token(_) => None,
                })
                .description("The subject whose tokens are revoked, for a revocation by subject."),
            )
            .field(
                field::<Revocation>("issuedBefore", TypeRef::named("Timestamptz"), |r| match &r.revoked {
                    Revoked::Subject { issued_before, .. } => time(*issued_before),
                    Revoked::Token(_) => None,
                })
                .description(
                    "For a revocation by subject: its tokens issued (`iat`) at or before this time are refused, and \
                     so are its tokens without `iat`.",
                ),
            )
            .field(field::<Revocation>("reason", TypeRef::named(TypeRef::STRING), |r| r.reason.clone().and_then(text)))
            .field(
                field::<Revocation>("revokedBy", TypeRef::named_nn(TypeRef::STRING), |r| text(&r.revoked_by))
                    .description("The `sub` of who revoked it (their role, for a token without `sub`)."),
            )
            .field(field::<Revocation>("revokedAt", TypeRef::named_nn("Timestamptz"), |r| time(r.revoked_at))),
    ]
}

pub fn query_fields(query: Object) -> Object {
    query.field(
        Field::new("tokenRevocations", TypeRef::named_nn_list_nn(REVOCATION), |ctx| {
            FieldFuture::new(async move {
                let (service, _) = authorised(&ctx)?;
                let all = service.store.revocations().await.map_err(stored)?;
                Ok(Some(FieldValue::list(all.into_iter().map(FieldValue::owned_any))))
            })
        })
        .description("Every revocation, newest first."),
    )
}

pub fn mutation_fields(mutation: Object) -> Object {
    mutation
        .field(
            Field::new("revokeToken", TypeRef::named_nn(REVOCATION), |ctx| {
                FieldFuture::new(async move { revoke(&ctx, "jti", |t| RevokeRequest::Token(t)).await })
            })
            .argument(InputValue::new("jti", TypeRef::named_nn(TypeRef::STRING)))
            .argument(InputValue::new("reason", TypeRef::named(TypeRef::STRING)))
            .description(
                "Revokes the token whose `jti` claim is `jti`: it is refused from now on, and live connections that \
                 carry it are closed (4403) within a second. Revoking it again returns the first record.",
            ),
        )
        .field(
            Field::new("revokeSubject", TypeRef::named_nn(REVOCATION), |ctx| {
                FieldFuture::new(async move { revoke(&ctx, "sub", |t| RevokeRequest::Subject(t)).await })
            })
            .argument(InputValue::new("sub", TypeRef::named_nn(TypeRef::STRING)))
            .argument(InputValue::new("reason", TypeRef::named(TypeRef::STRING)))
            .description(
                "Revokes every token of the subject `sub` issued up to now, with or without `jti`: they are refused \
                 from now on, and live connections that carry one are closed (4403) within a second. Tokens issued \
                 later (a new sign-in, `iat` after this second) are accepted.",
            ),
        )
}

/// Revokes what `kind` makes of the text argument `argument`.
async fn revoke<'a>(
    ctx: &ResolverContext<'a>,
    argument: &str,
    kind: for<'t> fn(&'t str) -> RevokeRequest<'t>,
) -> async_graphql::Result<Option<FieldValue<'a>>> {
    let (service, scope) = authorised(ctx)?;
    let target =
        checked_text(ctx, argument)?.ok_or_else(|| error(Code::BadUserInput, format!("`{argument}` is empty")))?;
    let reason = checked_text(ctx, "reason")?;
    let request = kind(&target);
    let by = scope.principal.subject.clone().unwrap_or_else(|| format!("role {}", scope.principal.role));
    let record = service.store.revoke(request, reason.as_deref(), &by).await.map_err(stored)?;
    remember(&service.revoked, &record);
    service.announcer.announce(crate::announce::Announcement::Revocations);
    tracing::info!(by = %by, revoked = ?request, "revoked tokens");
    Ok(Some(FieldValue::owned_any(record)))
}

/// A trimmed text argument: `None` when absent or blank, refused when longer than [`MAX_TEXT`].
fn checked_text(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<String>> {
    let Some(value) = ctx.args.get(name).filter(|v| !v.is_null()) else { return Ok(None) };
    let value = value.string()?.trim();
    if value.chars().count() > MAX_TEXT {
        return Err(error(Code::BadUserInput, format!("`{name}` is longer than {MAX_TEXT} characters")));
    }
    Ok((!value.is_empty()).then(|| value.to_string()))
}

fn authorised<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<(&'a Arc<RevocationService>, &'a Scope)> {
    let service = ctx
        .data::<Arc<RevocationService>>()
        .map_err(|_| error(Code::Internal, "this server keeps no revocations (it has no app database)"))?;
    let scope = ctx.data::<Scope>()?;
    if !service.policy.current().policy.may(&scope.principal.role, Permission::RevokeTokens) {
        return Err(error(
            Code::Forbidden,
            format!("role `{}` may not revoke tokens (it needs the `revoke_tokens` permission)", scope.principal.role),
        ));
    }
    Ok((service, scope))
}

fn stored(e: StoreError) -> async_graphql::Error {
    tracing::error!(error = %e, "revocations: the app database");
    error(Code::Internal, "the app database cannot be reached right now; nothing was revoked")
}
