//! The caller's own workspace: queries saved in the Explorer (`savedQueries`, `saveQuery`,
//! `deleteSavedQuery`) and the overview's tile layout (`overviewLayout`, `saveOverviewLayout`).
//!
//! Everything is keyed by the token's `sub`: a token without one is refused (UNAUTHENTICATED),
//! since there is nobody to keep it for. No permission is needed, because nobody else ever
//! reads it. A saved query is checked to parse as a GraphQL document, not against the role's
//! schema: the schema moves with the policy and the tables, and a query that stops fitting
//! should still be there to fix.

use async_graphql::Value as Gql;
use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, TypeRef};

use super::errors::{Code, error};
use super::output::{field, id_argument, numeric_id, text, timestamptz as time};
use super::resolve::Scope;
use crate::store::workspace::{OverviewLayout, SavedQuery};
use crate::store::{Store, StoreError};

const SAVED_QUERY: &str = "SavedQuery";
const LAYOUT: &str = "OverviewLayout";
/// Longest name of a saved query, in characters.
const MAX_NAME: usize = 100;
/// Largest saved query text, in bytes: GraphiQL's documents are far smaller.
const MAX_QUERY: usize = 64 * 1024;
/// Most KPI ids a layout names (in `tiles` and in `hidden` each).
const MAX_TILES: usize = 1000;

/// The app database, as the resolvers of this module find it in a request.
#[derive(Clone)]
pub struct WorkspaceStore(pub Store);

impl std::fmt::Debug for WorkspaceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkspaceStore")
    }
}

pub fn types() -> Vec<Object> {
    vec![saved_query_type(), layout_type()]
}

pub fn query_fields(query: Object) -> Object {
    query
        .field(
            Field::new("savedQueries", TypeRef::named_nn_list_nn(SAVED_QUERY), |ctx| {
                FieldFuture::new(async move {
                    let (store, owner) = caller(&ctx)?;
                    let saved = store.saved_queries(owner).await.map_err(stored)?;
                    Ok(Some(FieldValue::list(saved.into_iter().map(FieldValue::owned_any))))
                })
            })
            .description("Your saved queries (kept for your token's `sub`), by name."),
        )
        .field(
            Field::new("overviewLayout", TypeRef::named_nn(LAYOUT), |ctx| {
                FieldFuture::new(async move {
                    let (store, owner) = caller(&ctx)?;
                    Ok(Some(FieldValue::owned_any(store.overview_layout(owner).await.map_err(stored)?)))
                })
            })
            .description("How your overview arranges its KPI tiles (empty until you save one)."),
        )
}

pub fn mutation_fields(mutation: Object) -> Object {
    mutation
        .field(
            Field::new("saveQuery", TypeRef::named_nn(SAVED_QUERY), |ctx| FieldFuture::new(save_query(ctx)))
                .argument(InputValue::new("name", TypeRef::named_nn(TypeRef::STRING)))
                .argument(InputValue::new("query", TypeRef::named_nn(TypeRef::STRING)))
                .argument(InputValue::new("variables", TypeRef::named("JSON")))
                .description(
                    "Saves a query for yourself under `name`, replacing your query of that name if you have one. The \
                     query must parse as GraphQL; `variables`, if given, is a JSON object.",
                ),
        )
        .field(
            Field::new("deleteSavedQuery", TypeRef::named_nn(TypeRef::BOOLEAN), |ctx| {
                FieldFuture::new(async move {
                    let (store, owner) = caller(&ctx)?;
                    let id = id_argument(&ctx, "id")?;
                    let deleted = store.delete_saved_query(owner, id).await.map_err(stored)?;
                    Ok(Some(FieldValue::value(deleted)))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
            .description("Deletes one of your saved queries; false when you have none with that id."),
        )
        .field(
            Field::new("saveOverviewLayout", TypeRef::named_nn(LAYOUT), |ctx| FieldFuture::new(save_layout(ctx)))
                .argument(InputValue::new("tiles", TypeRef::named_nn_list_nn(TypeRef::ID)))
                .argument(InputValue::new("hidden", TypeRef::named_nn_list_nn(TypeRef::ID)))
                .description(
                    "Arranges your overview: the KPIs of `tiles` first, in that order, then the others; those in \
                     `hidden` not at all.",
                ),
        )
}

/// The store, and the caller's `sub`.
fn caller<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<(&'a Store, &'a str)> {
    let store = ctx
        .data::<WorkspaceStore>()
        .map_err(|_| error(Code::Internal, "this server keeps no workspaces (it has no app database)"))?;
    let scope = ctx.data::<Scope>()?;
    let owner = scope.principal.subject.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        error(
            Code::Unauthenticated,
            "saved queries and layouts are kept per user: sign in with a token that has a `sub`",
        )
    })?;
    Ok((&store.0, owner))
}

fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    error(Code::BadUserInput, message.into())
}

fn stored(e: StoreError) -> async_graphql::Error {
    match e {
        StoreError::Limit(message) | StoreError::Duplicate(message) => bad_input(message),
        other => {
            tracing::error!(error = %other, "workspace");
            error(Code::Internal, "the app database could not be reached; try again")
        }
    }
}

async fn save_query(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (store, owner) = caller(&ctx)?;
    let name = ctx.args.try_get("name")?.string()?.trim().to_string();
    let query = ctx.args.try_get("query")?.string()?.to_string();
    let variables = match ctx.args.get("variables") {
        Some(v) if !v.is_null() => Some(v.as_value().clone().into_json()?),
        _ => None,
    };
    check_query(&name, &query, variables.as_ref())?;
    let saved = store.save_query(owner, &name, &query, variables.as_ref()).await.map_err(stored)?;
    Ok(Some(FieldValue::owned_any(saved)))
}

/// A saved query's name, text and variables, or the error naming the argument at fault.
fn check_query(name: &str, query: &str, variables: Option<&serde_json::Value>) -> async_graphql::Result<()> {
    if name.is_empty() {
        return Err(bad_input("`name` is empty: give the query a name"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(bad_input(format!("`name` is longer than {MAX_NAME} characters")));
    }
    if query.len() > MAX_QUERY {
        return Err(bad_input(format!("`query` is larger than {} KiB", MAX_QUERY / 1024)));
    }
    if let Err(e) = async_graphql::parser::parse_query(query) {
        return Err(bad_input(format!("`query` is not a GraphQL document: {e}")));
    }
    if variables.is_some_and(|v| !v.is_object()) {
        return Err(bad_input("`variables` must be a JSON object"));
    }
    Ok(())
}

async fn save_layout(ctx: ResolverContext<'_>) -> async_graphql::Result<Option<FieldValue<'_>>> {
    let (store, owner) = caller(&ctx)?;
    let tiles = ids(&ctx, "tiles")?;
    let hidden = ids(&ctx, "hidden")?;
    let layout = store.save_overview_layout(owner, &tiles, &hidden).await.map_err(stored)?;
    Ok(Some(FieldValue::owned_any(layout)))
}

/// A list of KPI ids: each an id, none twice, at most [`MAX_TILES`].
fn ids(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Vec<i64>> {
    let list = ctx.args.try_get(name)?.list()?;
    if list.len() > MAX_TILES {
        return Err(bad_input(format!("`{name}` names more than {MAX_TILES} KPIs")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let id = numeric_id(item.as_value()).ok_or_else(|| bad_input(format!("`{name}[{i}]` is not a KPI id")))?;
        if out.contains(&id) {
            return Err(bad_input(format!("`{name}` names KPI {id} twice")));
        }
        out.push(id);
    }
    Ok(out)
}

fn ids_value(ids: &[i64]) -> Option<FieldValue<'static>> {
    Some(FieldValue::list(ids.iter().map(|id| FieldValue::value(Gql::String(id.to_string())))))
}

fn saved_query_type() -> Object {
    Object::new(SAVED_QUERY)
        .description("A query you saved in the Explorer.")
        .field(field::<SavedQuery>("id", TypeRef::named_nn(TypeRef::ID), |q| text(q.id.to_string())))
        .field(field::<SavedQuery>("name", TypeRef::named_nn(TypeRef::STRING), |q| text(&q.name)))
        .field(field::<SavedQuery>("query", TypeRef::named_nn(TypeRef::STRING), |q| text(&q.query)))
        .field(field::<SavedQuery>("variables", TypeRef::named("JSON"), |q| {
            q.variables.clone().and_then(|v| Gql::from_json(v).ok()).map(FieldValue::value)
        }))
        .field(field::<SavedQuery>("updatedAt", TypeRef::named_nn("Timestamptz"), |q| time(q.updated_at)))
}

fn layout_type() -> Object {
    Object::new(LAYOUT)
        .description("How your overview arranges its KPI tiles.")
        .field(
            field::<OverviewLayout>("tiles", TypeRef::named_nn_list_nn(TypeRef::ID), |l| ids_value(&l.tiles))
                .description("KPIs shown first, in this order; KPIs not named follow in the server's order."),
        )
        .field(field::<OverviewLayout>("hidden", TypeRef::named_nn_list_nn(TypeRef::ID), |l| ids_value(&l.hidden)))
        .field(
            field::<OverviewLayout>("updatedAt", TypeRef::named("Timestamptz"), |l| l.updated_at.and_then(time))
                .description("Null until you save a layout."),
        )
}

#[cfg(test)]
mod tests {
    use super::check_query;
    use serde_json::json;

    #[test]
    fn a_saved_query_must_have_a_name_parse_and_carry_object_variables() {
        let fine = "query Low { inventory(where: { onHand: { lt: 5 } }) { sku } }";
        assert!(check_query("low stock", fine, Some(&json!({ "n": 5 }))).is_ok());
        assert!(check_query("subscription", "subscription { orders { id } }", None).is_ok());
        for (name, query, variables, wanted) in [
            ("", fine, None, "`name` is empty"),
            (&*"x".repeat(101), fine, None, "longer than 100"),
            ("broken", "query { orders { id }", None, "not a GraphQL document"),
            ("huge", &*format!("{{ {} }}", "a ".repeat(40_000)), None, "larger than 64 KiB"),
            ("vars", fine, Some(json!([1, 2])), "must be a JSON object"),
        ] {
            let e = check_query(name, query, variables.as_ref()).expect_err(wanted);
            assert!(e.message.contains(wanted), "{wanted}: {}", e.message);
        }
    }
}
