//! Getting the source database ready for a run: the fixture schema must be there, the spread
//! scenario's warehouses are added when missing, and a range of order ids is reserved.
//!
//! Reserving ids (moving the `orders.id` identity past a range the writer then fills with
//! `OVERRIDING SYSTEM VALUE`) lets every other writer of the database — the simulator, the
//! application — go on inserting without ever taking an id of the run's.

use super::BenchError;
use super::scenario::{Warehouse, extra_warehouse_ids};

/// Ids and rows the writer needs.
pub struct Prepared {
    pub warehouses: Vec<Warehouse>,
    /// Customers to place orders for (the foreign key wants existing ones).
    pub customers: Vec<i64>,
    /// The first id of the reserved range.
    pub base: i64,
}

/// Checks the schema, adds warehouses up to `warehouses`, reserves `changes` order ids.
pub async fn prepare(url: &str, warehouses: usize, changes: usize) -> Result<Prepared, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(pg)?;
    tokio::spawn(connection);
    let has_schema: bool = client
        .query_one(
            "SELECT to_regclass('public.orders') IS NOT NULL AND to_regclass('public.warehouses') IS NOT NULL \
             AND to_regclass('public.customers') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !has_schema {
        return Err(BenchError::Database(
            "the database has no fixture schema (orders, warehouses, customers): load fixtures/postgres/schema.sql \
             and seed.sql, or run without --database"
                .into(),
        ));
    }
    let read_warehouses = async || -> Result<Vec<Warehouse>, BenchError> {
        let rows = client.query("SELECT id, region FROM public.warehouses ORDER BY id", &[]).await.map_err(pg)?;
        Ok(rows.iter().map(|r| Warehouse { id: r.get(0), region: r.get(1) }).collect())
    };
    let mut found = read_warehouses().await?;
    if found.len() < warehouses.max(1) {
        for (i, id) in extra_warehouse_ids(&found, warehouses.max(1) - found.len()).into_iter().enumerate() {
            client
                .execute(
                    "INSERT INTO public.warehouses (id, name, region, timezone) VALUES ($1, $2, 'eu', 'UTC') \
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &format!("Load test site {}", i + 1)],
                )
                .await
                .map_err(pg)?;
        }
        found = read_warehouses().await?;
    }
    let customers: Vec<i64> = client
        .query("SELECT id FROM public.customers ORDER BY id LIMIT 1000", &[])
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if customers.is_empty() {
        return Err(BenchError::Database("the database has no customers to place orders for: load the seed".into()));
    }
    let sequence: Option<String> =
        client.query_one("SELECT pg_get_serial_sequence('public.orders', 'id')", &[]).await.map_err(pg)?.get(0);
    let sequence = sequence.ok_or_else(|| BenchError::Database("orders.id has no identity sequence".into()))?;
    // Past both the rows there and the ids handed out but not yet committed; the margin covers
    // inserts that take an id between this read and the `setval`.
    let highest: i64 = client
        .query_one(
            &format!(
                "SELECT GREATEST((SELECT COALESCE(max(id), 0) FROM public.orders), (SELECT last_value FROM {sequence}))"
            ),
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let base = highest + 10_000;
    client
        .execute("SELECT setval($1::text::regclass, $2)", &[&sequence, &(base + changes as i64)])
        .await
        .map_err(pg)?;
    Ok(Prepared { warehouses: found, customers, base })
}

fn pg(e: tokio_postgres::Error) -> BenchError {
    BenchError::Database(crate::error::describe_pg_error(&e))
}
