//! Checks that a PostgreSQL source can do CDC, and sets up its publication.
//!
//! Every problem found is reported at once, each with the statement or setting that fixes it,
//! so a person can correct the database in one go.

use std::sync::Arc;

use tokio_postgres::Client;

use super::PgError;
use crate::error::SourceError;
use crate::error::describe_pg_error;
use crate::registry::{TableSpec, quote_ident};

/// Server-level checks: `wal_level`, replication privilege, free slots. Returns the server's
/// version (`server_version_num`).
pub async fn check_server(client: &Client, source_name: &str, user_slot: &str) -> Result<i32, SourceError> {
    let sql = |error, context: &str| PgError::Sql { source_name: source_name.into(), context: context.into(), error };
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), \
                    current_setting('max_replication_slots')::int, \
                    (SELECT count(*)::int FROM pg_replication_slots), \
                    r.rolreplication OR r.rolsuper, current_user::text, \
                    current_setting('server_version_num')::int \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| sql(e, "reading server settings"))?;
    let wal_level: String = row.get(0);
    let max_slots: i32 = row.get(1);
    let used_slots: i32 = row.get(2);
    let can_replicate: bool = row.get(3);
    let user: String = row.get(4);
    let version: i32 = row.get(5);
    let own_slot_exists: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", &[&user_slot])
        .await
        .map_err(|e| sql(e, "reading replication slots"))?
        .get(0);

    let mut problems = Vec::new();
    if version < 100000 {
        problems.push(format!("PostgreSQL {version} is too old: logical replication with pgoutput needs 10 or newer"));
    }
    if wal_level != "logical" {
        problems.push(format!(
            "wal_level is `{wal_level}`, it must be `logical`: run ALTER SYSTEM SET wal_level = logical \
             (or set it in postgresql.conf) and restart PostgreSQL"
        ));
    }
    if !can_replicate {
        problems.push(format!(
            "role `{user}` may not start replication: ALTER ROLE {} WITH REPLICATION",
            quote_ident(&user)
        ));
    }
    if used_slots >= max_slots && !own_slot_exists {
        problems.push(format!(
            "all {max_slots} replication slots are in use: raise max_replication_slots or drop an unused slot"
        ));
    }
    if problems.is_empty() {
        Ok(version)
    } else {
        Err(SourceError::Preflight { source_name: source_name.into(), problems: bullet(&problems) })
    }
}

pub fn bullet(problems: &[String]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// Makes sure `publication` exists and publishes every watched table with all operations.
pub async fn ensure_publication(
    client: &Client,
    source_name: &str,
    publication: &str,
    tables: &[Arc<TableSpec>],
) -> Result<(), SourceError> {
    let sql = |error, context: String| PgError::Sql { source_name: source_name.into(), context, error };
    let pub_row = client
        .query_opt(
            "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| sql(e, "reading publications".into()))?;
    let table_list = tables.iter().map(|t| t.qualified_sql()).collect::<Vec<_>>().join(", ");
    let fail = |what: String, e: &tokio_postgres::Error, fix: String| SourceError::Preflight {
        source_name: source_name.into(),
        problems: bullet(&[format!(
            "{what} failed ({}); as a superuser or the tables' owner run: {fix}",
            describe_pg_error(e)
        )]),
    };
    match pub_row {
        None => {
            let stmt = format!("CREATE PUBLICATION {publication} FOR TABLE {table_list}");
            client
                .batch_execute(&stmt)
                .await
                .map_err(|e| fail(format!("creating publication {publication}"), &e, stmt.clone()))?;
            tracing::info!(source = source_name, publication, "created publication");
        }
        Some(row) => {
            if !row.get::<_, bool>(0) {
                let stmt =
                    format!("ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete, truncate')");
                client
                    .batch_execute(&stmt)
                    .await
                    .map_err(|e| fail(format!("widening publication {publication}"), &e, stmt.clone()))?;
            }
            let published: Vec<(String, String)> = client
                .query(
                    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                    &[&publication],
                )
                .await
                .map_err(|e| sql(e, "reading publication tables".into()))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let missing: Vec<_> = tables
                .iter()
                .filter(|t| !published.iter().any(|(s, n)| *s == *t.schema && *n == *t.table))
                .map(|t| t.qualified_sql())
                .collect();
            if !missing.is_empty() {
                let stmt = format!("ALTER PUBLICATION {publication} ADD TABLE {}", missing.join(", "));
                client
                    .batch_execute(&stmt)
                    .await
                    .map_err(|e| fail(format!("adding tables to publication {publication}"), &e, stmt.clone()))?;
                tracing::info!(source = source_name, publication, added = missing.len(), "added tables to publication");
            }
        }
    }
    Ok(())
}
