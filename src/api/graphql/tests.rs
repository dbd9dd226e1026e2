//! In-process checks of the generated schema and its resolvers on a small replica; the HTTP
//! transport, auth and real data are covered by `tests/graphql_*.rs`.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::cache::views;
use super::errors;
use super::resolve::Scope;
use super::schema;
use crate::auth::Principal;
use crate::change::{Position, Row, SourceEvent, TableEvent};
use crate::policy::store::Current;
use crate::policy::{Policy, PolicyStore};
use crate::registry::{Column, ColumnType, Registry, TableId, TableSchema};
use crate::replica::Replica;
use crate::value::Value;

const POLICY: &str = r#"
[roles.admin]
all_tables = true

[roles.clerk.tables.orders]
columns = { except = ["notes"] }
filter = { warehouseId = { in = { claim = "warehouses" } } }
"#;

fn registry() -> Registry {
    let r = Registry::default();
    r.add("shop".into(), "public", "orders", "orders", vec!["status".into()], vec![]).unwrap();
    r
}

fn orders_schema(registry: &Registry) -> Arc<TableSchema> {
    let col = |name: &str, ty, nullable| Column { name: name.into(), ty, nullable };
    Arc::new(TableSchema {
        spec: registry.get(TableId(0)).unwrap().clone(),
        columns: vec![
            col("id", ColumnType::Int8, false),
            col("status", ColumnType::Text, false),
            col("total", ColumnType::Numeric, false),
            col("warehouse_id", ColumnType::Text, false),
            col("item_count", ColumnType::Int4, false),
            col("notes", ColumnType::Text, true),
            col("attrs", ColumnType::Json, true),
            col("created_at", ColumnType::TimestampTz, false),
        ],
        key: vec![0],
        indexed: vec![1],
        version: 1,
    })
}

fn row(id: i64, status: &str, total: &str, warehouse: &str, items: i32, notes: Option<&str>) -> Row {
    Row::from(vec![
        Value::Int8(id),
        Value::text(status),
        Value::Numeric(total.into()),
        Value::text(warehouse),
        Value::Int4(items),
        notes.map(Value::text).unwrap_or(Value::Null),
        // A NULL custom scalar is a null field, not an error.
        if id == 2 { Value::Null } else { Value::Json("{\"gift\": true, \"n\": 1.000000000000000001}".into()) },
        // Row n was created n minutes before the test ran.
        Value::TimestampTz(crate::query::wall_micros() - id * 60_000_000),
    ])
}

fn replica(ready: bool) -> Replica {
    let registry = registry();
    let mut r = Replica::new();
    r.apply(&SourceEvent::Table(TableEvent::SnapshotBegin { schema: orders_schema(&registry), estimated_rows: None }));
    let rows = vec![
        row(1, "paid", "10.50", "WH-BER", 1, Some("ring twice")),
        row(2, "pending", "99.99", "WH-MAD", 3, None),
        row(3, "paid", "5.00", "WH-BER", 2, None),
        row(4, "shipped", "120.00", "WH-NJE", 5, None),
    ];
    r.apply(&SourceEvent::SnapshotRows { table: TableId(0), rows });
    if ready {
        r.apply(&SourceEvent::Table(TableEvent::SnapshotEnd { table: TableId(0), position: Position(1), rows: 4 }));
    }
    r
}

fn current() -> Current {
    PolicyStore::new(Policy::from_toml(POLICY, "test", &registry()).unwrap()).current()
}

async fn run(role: &str, claims: Json, replica: Replica, query: &str) -> (bool, Json) {
    let policy = current();
    let tables: Vec<Arc<TableSchema>> = replica.tables().map(|t| t.schema.clone()).collect();
    let schema = schema::build(&views(role, &policy, &tables)).unwrap();
    let principal = Principal {
        role: role.into(),
        subject: None,
        claims: claims.as_object().cloned().unwrap_or_default(),
        expires_at: None,
    };
    let request = async_graphql::Request::new(query).data(Scope::new(principal, Arc::new(replica)));
    let mut response = schema.execute(request).await;
    let refused = errors::label(&mut response);
    (refused, serde_json::to_value(&response).unwrap())
}

fn codes(answer: &Json) -> Vec<String> {
    answer["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn rows_filter_order_and_page() {
    let q = r#"{ orders(where: { status: { in: ["paid", "shipped"] }, total: { gte: "5" } },
                        orderBy: [{ total: DESC }], limit: 2, offset: 1) { id total status itemCount attrs } }"#;
    let (_, a) = run("admin", json!({}), replica(true), q).await;
    assert_eq!(
        a["data"]["orders"],
        json!([
            { "id": "1", "total": "10.50", "status": "paid", "itemCount": 1, "attrs": { "gift": true, "n": 1.0 } },
            { "id": "3", "total": "5.00", "status": "paid", "itemCount": 2, "attrs": { "gift": true, "n": 1.0 } },
        ]),
        "{a}"
    );
    let (_, a) = run("admin", json!({}), replica(true), r#"{ ordersByKey(id: 2) { id attrs notes } }"#).await;
    assert_eq!(a["data"]["ordersByKey"], json!({ "id": "2", "attrs": null, "notes": null }), "{a}");
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { notes: { isNull: false } }) { id notes } }"#).await;
    assert_eq!(a["data"]["orders"], json!([{ "id": "1", "notes": "ring twice" }]));
}

#[tokio::test]
async fn json_values_keep_every_digit_on_the_wire() {
    let policy = current();
    let replica = replica(true);
    let tables: Vec<Arc<TableSchema>> = replica.tables().map(|t| t.schema.clone()).collect();
    let schema = schema::build(&views("admin", &policy, &tables)).unwrap();
    let principal = Principal { role: "admin".into(), subject: None, claims: Default::default(), expires_at: None };
    let request = async_graphql::Request::new("{ ordersByKey(id: \"3\") { attrs } }")
        .data(Scope::new(principal, Arc::new(replica)));
    let text = serde_json::to_string(&schema.execute(request).await).unwrap();
    assert!(text.contains("1.000000000000000001"), "{text}");
}

#[tokio::test]
async fn the_row_filter_applies_to_rows_keys_and_aggregates() {
    let clerk = json!({ "warehouses": ["WH-BER"] });
    let (_, a) = run("clerk", clerk.clone(), replica(true), "{ orders { id warehouseId } }").await;
    assert_eq!(
        a["data"]["orders"],
        json!([{ "id": "1", "warehouseId": "WH-BER" }, { "id": "3", "warehouseId": "WH-BER" }])
    );
    let (_, a) = run(
        "clerk",
        clerk.clone(),
        replica(true),
        r#"{ a: ordersByKey(id: "1") { id } b: ordersByKey(id: "2") { id } }"#,
    )
    .await;
    assert_eq!(a["data"], json!({ "a": { "id": "1" }, "b": null }), "a row outside the filter reads as missing");
    let q = "{ ordersAggregate(groupBy: [STATUS]) { key { status } count sum { total itemCount } avg { total } max { total } } }";
    let (_, a) = run("clerk", clerk.clone(), replica(true), q).await;
    assert_eq!(
        a["data"]["ordersAggregate"],
        json!([{ "key": { "status": "paid" }, "count": 2, "sum": { "total": "15.50", "itemCount": "3" },
                 "avg": { "total": "7.7500000000000000" }, "max": { "total": "10.50" } }]),
        "{a}"
    );
    let (_, a) = run("clerk", json!({}), replica(true), "{ orders { id } }").await;
    assert_eq!(codes(&a), ["FORBIDDEN"], "a token without the claim: {a}");
    assert!(a["data"].is_null());
}

#[tokio::test]
async fn hidden_columns_are_not_in_the_schema() {
    let clerk = json!({ "warehouses": ["WH-BER"] });
    for q in [
        "{ orders { notes } }",
        r#"{ orders(where: { notes: { isNull: false } }) { id } }"#,
        "{ orders(orderBy: { notes: ASC }) { id } }",
        "{ ordersAggregate(groupBy: [NOTES]) { count } }",
        "{ ordersAggregate { max { notes } } }",
    ] {
        let (refused, a) = run("clerk", clerk.clone(), replica(true), q).await;
        assert!(refused, "{q}: {a}");
        assert_eq!(codes(&a), ["GRAPHQL_VALIDATION_FAILED"], "{q}: {a}");
    }
    let (_, a) = run("clerk", clerk, replica(true), r#"{ __type(name: "Orders") { fields { name } } }"#).await;
    let fields: Vec<&str> =
        a["data"]["__type"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fields, ["id", "status", "total", "warehouseId", "itemCount", "attrs", "createdAt"]);
}

#[tokio::test]
async fn loading_tables_and_bad_input_have_codes() {
    let (_, a) = run("admin", json!({}), replica(false), "{ orders { id } }").await;
    assert_eq!(codes(&a), ["NOT_READY"], "{a}");
    let (_, a) = run("admin", json!({}), replica(true), r#"{ orders(where: { total: { gt: "1e3" } }) { id } }"#).await;
    assert_eq!(codes(&a), ["BAD_USER_INPUT"], "{a}");
    let (_, a) = run("admin", json!({}), replica(true), "{ orders(limit: -1) { id } }").await;
    assert_eq!(codes(&a), ["BAD_USER_INPUT"], "{a}");
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { status: { like: "x\\" } }) { id } }"#).await;
    assert_eq!(codes(&a), ["BAD_USER_INPUT"], "{a}");
}

#[tokio::test]
async fn column_and_ago_operands() {
    let ids = |a: &Json| -> Vec<String> {
        a["data"]["orders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    // itemCount (int4) against total (numeric): compared by value, as SQL does.
    let q = r#"{ orders(where: { total: { ltColumn: "itemCount" } }) { id } }"#;
    let (_, a) = run("admin", json!({}), replica(true), q).await;
    assert_eq!(ids(&a), Vec::<String>::new(), "{a}");
    let q = r#"{ orders(where: { itemCount: { lteColumn: "total" }, not: { total: { gteColumn: "itemCount" } } }) { id } }"#;
    let (_, a) = run("admin", json!({}), replica(true), q).await;
    assert_eq!(ids(&a), Vec::<String>::new(), "{a}");
    let q = r#"{ orders(where: { total: { gtColumn: "itemCount" } }, orderBy: { id: ASC }) { id } }"#;
    let (_, a) = run("admin", json!({}), replica(true), q).await;
    assert_eq!(ids(&a), ["1", "2", "3", "4"], "{a}");
    let q = r#"{ orders(where: { createdAt: { ltAgo: "PT150S" } }, orderBy: { id: ASC }) { id } }"#;
    let (_, a) = run("admin", json!({}), replica(true), q).await;
    assert_eq!(ids(&a), ["3", "4"], "{a}");
    let q = r#"{ ordersAggregate(where: { createdAt: { gteAgo: "PT150S" } }) { count } }"#;
    let (_, a) = run("admin", json!({}), replica(true), q).await;
    assert_eq!(a["data"]["ordersAggregate"][0]["count"], json!(2), "{a}");

    let refused = |a: &Json, code: &str, text: &str| {
        assert_eq!(codes(a), [code], "{a}");
        let message = a["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(text), "{message}");
    };
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { total: { ltColumn: "totl" } }) { id } }"#).await;
    refused(&a, "BAD_USER_INPUT", "`total.lt`: unknown column `totl`");
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { status: { eqColumn: "total" } }) { id } }"#).await;
    refused(&a, "BAD_USER_INPUT", "column `status` (text) cannot be compared with column `total` (numeric)");
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { createdAt: { ltAgo: "10 minutes" } }) { id } }"#)
            .await;
    refused(&a, "BAD_USER_INPUT", "at `createdAt.ltAgo`: `ago`: expected an ISO 8601 duration");
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { createdAt: { ltAgo: "P1M" } }) { id } }"#).await;
    refused(&a, "BAD_USER_INPUT", "months and years are not fixed lengths");
    // `ago` on a number is not in the schema at all: the validator names the field.
    let (_, a) =
        run("admin", json!({}), replica(true), r#"{ orders(where: { total: { ltAgo: "PT1M" } }) { id } }"#).await;
    refused(&a, "GRAPHQL_VALIDATION_FAILED", "ltAgo");
    // A hidden column is no operand either (the clerk does not see `notes`).
    let q = r#"{ orders(where: { status: { eqColumn: "notes" } }) { id } }"#;
    let (_, a) = run("clerk", json!({"warehouses": ["WH-BER"]}), replica(true), q).await;
    refused(&a, "BAD_USER_INPUT", "unknown column `notes`");
}

#[test]
fn the_admin_schema_reads_as_expected() {
    let replica = replica(true);
    let tables: Vec<Arc<TableSchema>> = replica.tables().map(|t| t.schema.clone()).collect();
    let sdl = schema::sdl(&schema::build(&views("admin", &current(), &tables)).unwrap());
    for line in [
        "orders(where: OrdersBoolExp, orderBy: [OrdersOrderBy!], limit: Int, offset: Int): [Orders!]!",
        "ordersByKey(id: BigInt!): Orders",
        "ordersAggregate(where: OrdersBoolExp, groupBy: [OrdersColumn!]): [OrdersAggregateGroup!]!",
        "notes: String\n",
        "total: Numeric!",
        "attrs: NullComparisonExp",
        "scalar BigInt",
    ] {
        assert!(sdl.contains(line), "missing {line:?} in\n{sdl}");
    }
}

#[tokio::test]
async fn a_granted_table_not_loaded_yet_is_not_ready() {
    let registry = registry();
    registry.add("shop".into(), "public", "tickets", "tickets", vec![], vec![]).unwrap();
    let policy = Policy::from_toml(POLICY, "test", &registry).unwrap();
    let replica = replica(true);
    let (refused, _) = run("admin", json!({}), replica.clone(), "{ tickets { id } ordersAggregate { count } }").await;
    assert!(refused);
    let tables: Vec<Arc<TableSchema>> = replica.tables().map(|t| t.schema.clone()).collect();
    let schema = schema::build(&views("admin", &current(), &tables)).unwrap();
    let execute = |q: &'static str| {
        let principal = Principal { role: "admin".into(), subject: None, claims: Default::default(), expires_at: None };
        let request = async_graphql::Request::new(q).data(Scope::new(principal, Arc::new(replica.clone())));
        let schema = schema.clone();
        async move {
            let mut response = schema.execute(request).await;
            assert!(errors::label(&mut response));
            response
        }
    };
    let mut r = execute("{ ticketsAggregate { count } }").await;
    assert!(super::loading::relabel(&mut r, "admin", &policy, &registry, &replica));
    let a = serde_json::to_value(&r).unwrap();
    assert_eq!(codes(&a), ["NOT_READY"], "{a}");
    assert!(a["errors"][0]["message"].as_str().unwrap().contains("`tickets` is not loaded yet"));
    // Not for a role the policy does not grant the table, nor for a name that is no table.
    let mut r = execute("{ tickets { id } }").await;
    assert!(!super::loading::relabel(&mut r, "clerk", &policy, &registry, &replica));
    assert_eq!(codes(&serde_json::to_value(&r).unwrap()), ["GRAPHQL_VALIDATION_FAILED"]);
    let mut r = execute("{ ticketz { id } }").await;
    assert!(!super::loading::relabel(&mut r, "admin", &policy, &registry, &replica));
}

#[test]
fn every_type_and_root_field_of_the_product_is_reserved_for_it() {
    use crate::policy::names::{RESERVED_ROOT_FIELDS, RESERVED_TYPES};
    // With no table at all, whatever the schema holds beside GraphQL's own is the product's.
    let features = schema::Features {
        kpis: true,
        alerts: true,
        workspace: true,
        notifications: true,
        revocations: true,
        ..Default::default()
    };
    let schema = schema::build_with(&[], features).expect("a schema");
    let sdl = schema::sdl(&schema);
    let mut unreserved = Vec::new();
    for line in sdl.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["type" | "input" | "enum", name, ..] = words[..]
            && !RESERVED_TYPES.contains(&name)
            && name != "Query"
        {
            unreserved.push(format!("type {name}"));
        }
    }
    for root in ["Query", "Mutation", "Subscription"] {
        let Some(start) = sdl.find(&format!("type {root} {{")) else { continue };
        let body = &sdl[start..start + sdl[start..].find("\n}").expect("a closed type")];
        for line in body.lines().skip(1) {
            // Fields are indented once and start with their name (arguments on lines of their
            // own are indented twice; descriptions start with quotes).
            let Some(line) = line.strip_prefix("  ").filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase())) else {
                continue;
            };
            let name: String = line.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            if line[name.len()..].starts_with([':', '(']) && !RESERVED_ROOT_FIELDS.contains(&name.as_str()) {
                unreserved.push(format!("{root}.{name}"));
            }
        }
    }
    assert!(unreserved.is_empty(), "not reserved in policy::names (a table could collide): {unreserved:?}");
}
