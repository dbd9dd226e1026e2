//! One role's schema, generated from its table views.
//!
//! For each table the role may read: `orders(where, orderBy, limit, offset)`,
//! `ordersByKey(<key columns>)` and `ordersAggregate(where, groupBy)`, as its grant allows;
//! with [`Features::kpis`], the KPI fields, mutations and subscriptions ([`super::kpis`]).
//! Depth and complexity are capped so a single document cannot make the server walk every
//! table many times over.

use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, Schema, SchemaError, Subscription, TypeRef,
};

use super::scalars::{output_type, scalar_types};
use super::types::{self, Shared};
use super::view::TableView;
use super::{live, resolve};

/// How large a document may be (`[limits]`): its depth and the fields it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Deepest selection accepted. Data queries are at most four levels deep
    /// (`ordersAggregate { sum { total } }` plus a fragment); GraphiQL's introspection query
    /// needs 13.
    pub depth: usize,
    /// Most fields one document may select (each alias counts).
    pub fields: usize,
}

impl From<&crate::config::LimitsConfig> for DocumentLimits {
    fn from(limits: &crate::config::LimitsConfig) -> Self {
        DocumentLimits { depth: limits.max_depth, fields: limits.max_fields }
    }
}

/// `[limits]`'s defaults.
impl Default for DocumentLimits {
    fn default() -> Self {
        DocumentLimits::from(&crate::config::LimitsConfig::default())
    }
}

/// What the server runs beside the tables' fields: each adds its fields to every role's schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// KPIs (`kpis`, `kpi`, the KPI mutations and subscriptions).
    pub kpis: bool,
    /// Alerts (`alertRules`, `alerts`, `alertHistory`, `silences`, their mutations and the
    /// `alerts` subscription); they come with KPIs.
    pub alerts: bool,
    /// The caller's own saved queries and overview layout (`savedQueries`, `overviewLayout`,
    /// their mutations).
    pub workspace: bool,
    /// Contact points, the routing policy and the notification log (`contactPoints`,
    /// `notificationPolicy`, `notifications`, their mutations), for roles that may manage them.
    pub notifications: bool,
    /// Token revocation (`tokenRevocations`, `revokeToken`, `revokeSubject`), for roles that may
    /// revoke tokens.
    pub revocations: bool,
    /// Change streams (`…Changes`) of the tables whose policy allows them.
    pub changes: bool,
    /// Depth and size caps of every document.
    pub document: DocumentLimits,
}

/// Builds the schema of a role that sees `views` (sorted by table name for a stable SDL).
pub fn build(views: &[Arc<TableView>]) -> Result<Schema, SchemaError> {
    build_with(views, Features::default())
}

/// Like [`build`], with the fields of `features`.
pub fn build_with(views: &[Arc<TableView>], features: Features) -> Result<Schema, SchemaError> {
    let mut shared = Shared::default();
    let mut query =
        Object::new("Query").description("Read the live replica. Each role sees only what its policy grants.");
    let mut objects = Vec::new();
    let mut inputs = Vec::new();
    let mut enums = Vec::new();
    for view in views {
        let ops = view.operations();
        let changes = features.changes && super::changes::schema::offered(view);
        if ops.rows || ops.by_key || changes {
            objects.push(types::row_object(view, &mut shared));
        }
        inputs.push(types::bool_exp(view, &mut shared));
        let order_by = types::order_by(view, &mut shared);
        let where_arg = || InputValue::new("where", TypeRef::named(types::bool_exp_name(view)));
        if ops.rows {
            let mut field =
                Field::new(&view.field, TypeRef::named_nn_list_nn(&view.type_name), resolve::rows(view.clone()))
                    .description(format!(
                        "Rows of `{}`, in primary-key order unless `orderBy` says otherwise; `limit` is at most \
                     {max}, and without it an answer of more than {max} rows is refused.",
                        view.schema.spec.name,
                        max = super::arguments::MAX_ROWS
                    ))
                    .argument(where_arg());
            if order_by.is_some() {
                field = field.argument(InputValue::new("orderBy", TypeRef::named_nn_list(types::order_by_name(view))));
            }
            field = field
                .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT)))
                .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)));
            query = query.field(field);
        }
        if ops.by_key
            && let Some(key) = view.key_columns()
        {
            let mut field = Field::new(
                format!("{}ByKey", view.field),
                TypeRef::named(&view.type_name),
                resolve::by_key(view.clone()),
            )
            .description("The row with this primary key, or null.");
            for column in key {
                field = field.argument(InputValue::new(&column.name, output_type(&column.ty, false)));
            }
            query = query.field(field);
        }
        if ops.aggregate {
            let mut field = Field::new(
                format!("{}Aggregate", view.field),
                TypeRef::named_nn_list_nn(types::group_name(view)),
                resolve::aggregate(view.clone()),
            )
            .description("count, sum, avg, min and max over the rows; one group per distinct `groupBy` value (one group without it).")
            .argument(where_arg());
            if let Some(columns) = types::column_enum(view) {
                field =
                    field.argument(InputValue::new("groupBy", TypeRef::named_nn_list(types::column_enum_name(view))));
                enums.push(columns);
            }
            query = query.field(field);
            objects.extend(types::aggregate_types(view, &mut shared));
        }
        inputs.extend(order_by);
    }
    if views.is_empty() && !features.kpis && !features.workspace {
        // A schema needs a field; this one says why there is nothing else.
        query = query.field(Field::new("noTablesGranted", TypeRef::named_nn(TypeRef::STRING), |_| {
            FieldFuture::new(async {
                Ok(Some(FieldValue::value("the policy grants this role no table that is loaded")))
            })
        }));
    }
    // Every query field is also a live query.
    let mut subscription = Subscription::new("Subscription").description(
        "Live queries: each field answers at once, then again after every source transaction that changes its \
         answer. Served over WebSocket at /graphql (graphql-transport-ws, or the legacy graphql-ws).",
    );
    let mut live_types = Vec::new();
    let mut streams = false;
    for view in views {
        subscription = live::schema::fields(subscription, view);
        let patches = view.operations().rows && view.key_columns().is_some();
        if patches && let Some(types) = live::schema::patch_types(view) {
            live_types.extend(types);
        }
        if features.changes && super::changes::schema::offered(view) {
            subscription = super::changes::schema::field(subscription, view);
            live_types.extend(super::changes::schema::types(view, !patches));
            streams = true;
        }
    }
    if streams {
        enums.extend(super::changes::schema::enums());
        shared.scalars.insert("BigInt");
        shared.scalars.insert("Timestamptz");
    }
    let mut mutation = None;
    if features.kpis {
        let (q, sub, parts) = super::kpis::extend(query, subscription);
        (query, subscription) = (q, sub);
        objects.extend(parts.objects);
        inputs.extend(parts.inputs);
        enums.extend(parts.enums);
        mutation = Some(parts.mutation);
        shared.scalars.insert("JSON");
        if features.alerts {
            let (q, m, sub, parts) =
                super::alerts::extend(query, mutation.take().expect("the KPI mutations"), subscription);
            (query, subscription, mutation) = (q, sub, Some(m));
            objects.extend(parts.objects);
            inputs.extend(parts.inputs);
            enums.extend(parts.enums);
        }
    }
    if features.workspace {
        query = super::workspace::query_fields(query);
        let root =
            mutation.take().unwrap_or_else(|| Object::new("Mutation").description("Changes to opslive's own state."));
        mutation = Some(super::workspace::mutation_fields(root));
        objects.extend(super::workspace::types());
        shared.scalars.insert("JSON");
        shared.scalars.insert("Timestamptz");
    }
    if features.notifications {
        query = super::notifications::query_fields(query);
        let root =
            mutation.take().unwrap_or_else(|| Object::new("Mutation").description("Changes to opslive's own state."));
        mutation = Some(super::notifications::mutation_fields(root));
        let (o, i, e) = super::notifications::types();
        objects.extend(o);
        inputs.extend(i);
        enums.extend(e);
        shared.scalars.insert("JSON");
        shared.scalars.insert("Timestamptz");
    }
    if features.revocations {
        query = super::revocations::query_fields(query);
        let root =
            mutation.take().unwrap_or_else(|| Object::new("Mutation").description("Changes to opslive's own state."));
        mutation = Some(super::revocations::mutation_fields(root));
        objects.extend(super::revocations::types());
        shared.scalars.insert("Timestamptz");
    }
    if !live_types.is_empty() || features.kpis {
        live_types.push(live::schema::as_of());
        shared.scalars.insert("Timestamptz");
    }
    let comparisons: Vec<_> = std::mem::take(&mut shared.comparisons).into_iter().collect();
    for (name, ty) in comparisons {
        inputs.push(types::comparison(&name, &ty, &mut shared));
    }
    if shared.order_direction {
        enums.push(types::order_direction());
    }
    let live_fields = views.iter().any(|v| {
        let ops = v.operations();
        ops.rows || ops.aggregate || (ops.by_key && v.key_columns().is_some())
    }) || streams;
    let live_fields = live_fields || features.kpis;
    let root = live_fields.then_some("Subscription");
    let mut builder = Schema::build("Query", mutation.as_ref().map(|_| "Mutation"), root)
        .limit_depth(features.document.depth)
        .limit_complexity(features.document.fields)
        .register(query);
    if live_fields {
        builder = builder.register(subscription);
    }
    if let Some(mutation) = mutation {
        builder = builder.register(mutation);
    }
    for t in live_types {
        builder = builder.register(t);
    }
    for t in objects {
        builder = builder.register(t);
    }
    for t in inputs {
        builder = builder.register(t);
    }
    for t in enums {
        builder = builder.register(t);
    }
    for t in scalar_types(&shared.scalars) {
        builder = builder.register(t);
    }
    builder.finish()
}

/// The schema as SDL, formatted for reading and diffing (the committed `graphql/schema.graphql`).
pub fn sdl(schema: &Schema) -> String {
    schema.sdl_with_options(async_graphql::SDLExportOptions::new().use_space_ident().indent_width(2))
}
