//! What the simulator needs from the source database, checked before it writes anything.
//!
//! Pointing `opslive simulate` at the wrong or an empty database is the likeliest first mistake,
//! and a failing INSERT halfway through a run would explain it badly. So every table and column
//! the statements use is looked up first (resolved through the session's search_path, as the
//! statements are), and the reference rows orders and tickets are made from must exist.

use tokio_postgres::Client;

use super::SimError;
use super::world::Reference;

/// Every table of the shop the simulator touches, with the columns it reads or writes (the
/// helpdesk's are in [`super::helpdesk::REQUIRED`]: beside these, or in a database of their own).
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("warehouses", &["id", "region"]),
    ("customers", &["id", "region"]),
    (
        "orders",
        &[
            "id",
            "channel",
            "customer_id",
            "status",
            "total",
            "currency",
            "warehouse_id",
            "region",
            "item_count",
            "notes",
            "created_at",
            "updated_at",
            "paid_at",
            "shipped_at",
        ],
    ),
    ("products", &["sku", "unit_price"]),
    ("inventory", &["sku", "warehouse_id", "on_hand", "reserved", "reorder_point", "updated_at"]),
    (
        "reconciliation_batches",
        &[
            "id",
            "account",
            "batch_date",
            "expected_count",
            "matched_count",
            "expected_amount",
            "matched_amount",
            "status",
            "opened_at",
            "closed_at",
            "updated_at",
        ],
    ),
    ("reconciliation_exceptions", &["id", "batch_id", "kind", "amount", "detail", "created_at", "resolved_at"]),
];

/// The missing tables and columns, as readable phrases; empty when everything is there.
/// `helpdesk_apart`: the helpdesk's tables are not looked for here.
pub(crate) async fn missing(client: &Client, helpdesk_apart: bool) -> Result<Vec<String>, tokio_postgres::Error> {
    let helpdesk: &[_] = if helpdesk_apart { &[] } else { super::helpdesk::REQUIRED };
    let required: Vec<_> = REQUIRED.iter().chain(helpdesk).collect();
    let tables: Vec<&str> = required.iter().map(|(t, _)| *t).collect();
    let rows = client
        .query(
            "SELECT t.name, a.attname::text
             FROM unnest($1::text[]) AS t (name)
             LEFT JOIN pg_attribute AS a
                    ON a.attrelid = to_regclass(quote_ident(t.name)) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&tables],
        )
        .await?;
    let mut missing_tables = Vec::new();
    let mut missing_columns = Vec::new();
    for (table, columns) in required {
        let present: Vec<&str> =
            rows.iter().filter(|r| r.get::<_, &str>(0) == *table).filter_map(|r| r.get::<_, Option<&str>>(1)).collect();
        if present.is_empty() {
            missing_tables.push(*table);
            continue;
        }
        for column in *columns {
            if !present.contains(column) {
                missing_columns.push(format!("{table}.{column}"));
            }
        }
    }
    let mut problems = Vec::new();
    match missing_tables.len() {
        0 => {}
        1 => problems.push(format!("missing table {}", missing_tables[0])),
        _ => problems.push(format!("missing tables {}", missing_tables.join(", "))),
    }
    match missing_columns.len() {
        0 => {}
        1 => problems.push(format!("missing column {}", missing_columns[0])),
        _ => problems.push(format!("missing columns {}", missing_columns.join(", "))),
    }
    Ok(problems)
}

/// Fails unless the server takes writes and the tables exist and hold the reference rows
/// (warehouses, stock, customers, agents) that the simulated business runs on; returns those
/// rows. `helpdesk_apart`: tickets and agents are checked in their own database instead.
pub(crate) async fn check(client: &Client, database: &str, helpdesk_apart: bool) -> Result<Reference, SimError> {
    let sql = |context: &str, e: tokio_postgres::Error| SimError::from_pg(database, context, e);
    let standby: bool =
        client.query_one("SELECT pg_is_in_recovery()", &[]).await.map_err(|e| sql("checking the server", e))?.get(0);
    if standby {
        return Err(SimError::ReadOnly { database: database.to_string() });
    }
    let problems = missing(client, helpdesk_apart).await.map_err(|e| sql("checking the schema", e))?;
    if !problems.is_empty() {
        return Err(SimError::SchemaMissing { database: database.to_string(), problems });
    }
    let reference = Reference::load(client).await.map_err(|e| sql("reading reference data", e))?;
    let mut empty = reference.empty_tables();
    let agents = helpdesk_apart
        || client
            .query_one("SELECT EXISTS (SELECT 1 FROM agents)", &[])
            .await
            .map_err(|e| sql("reading agents", e))?
            .get::<_, bool>(0);
    if !agents {
        empty.push("agents");
    }
    if !empty.is_empty() {
        return Err(SimError::NoReferenceData {
            database: database.to_string(),
            tables: empty.iter().map(|t| t.to_string()).collect(),
        });
    }
    Ok(reference)
}
