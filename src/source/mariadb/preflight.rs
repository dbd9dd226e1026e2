//! Before anything is read: the server's binlog must carry what CDC needs, and the user the
//! privileges. Every problem is listed at once, each with its fix.

use mysql_async::prelude::Queryable;

use super::connection::Endpoint;
use crate::error::SourceError;

/// Server settings a binlog reader depends on, with the value it needs and why.
const SETTINGS: [(&str, &str, &str); 5] = [
    ("log_bin", "ON", "start the server with --log-bin (the binary log is what opslive reads)"),
    ("binlog_format", "ROW", "set binlog_format=ROW (statements cannot be replayed into a replica)"),
    ("binlog_row_image", "FULL", "set binlog_row_image=FULL (updates and deletes must carry every column)"),
    (
        "binlog_row_metadata",
        "FULL",
        "set binlog_row_metadata=FULL (column names, signedness and enum members travel with each change)",
    ),
    ("log_bin_compress", "OFF", "set log_bin_compress=OFF (compressed row events cannot be read and would be lost)"),
];

pub async fn check_server(conn: &mut mysql_async::Conn, endpoint: &Endpoint) -> Result<(), SourceError> {
    let mut problems = Vec::new();
    // Every setting in one round trip.
    let select = SETTINGS.map(|(name, ..)| format!("CAST(@@GLOBAL.{name} AS CHAR)")).join(", ");
    let mut row: Option<mysql_async::Row> =
        conn.query_first(format!("SELECT {select}")).await.map_err(endpoint.sql("reading the binlog settings"))?;
    for (i, (name, wanted, fix)) in SETTINGS.into_iter().enumerate() {
        let value: String = row.as_mut().and_then(|r| r.take::<Option<String>, _>(i)).flatten().unwrap_or_default();
        let on = |v: &str| matches!(v, "1" | "ON");
        let ok = match wanted {
            "ON" => on(&value),
            "OFF" => !on(&value),
            w => value.eq_ignore_ascii_case(w),
        };
        if !ok {
            problems.push(format!("{name} is {value}: {fix}"));
        }
    }
    let grants: Vec<String> =
        conn.query("SHOW GRANTS FOR CURRENT_USER()").await.map_err(endpoint.sql("reading the user's privileges"))?;
    let granted = |privilege: &str| {
        grants.iter().any(|g| {
            let g = g.to_ascii_uppercase();
            g.starts_with("GRANT ALL PRIVILEGES ON *.*") || (g.contains(" ON *.*") && g.contains(privilege))
        })
    };
    if !granted("REPLICATION SLAVE") {
        problems.push(
            "the user lacks REPLICATION SLAVE (to read the binlog): GRANT REPLICATION SLAVE ON *.* TO <user>".into(),
        );
    }
    if !granted("BINLOG MONITOR") && !granted("REPLICATION CLIENT") {
        problems.push(
            "the user lacks BINLOG MONITOR (to read binlog positions): GRANT BINLOG MONITOR ON *.* TO <user>".into(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SourceError::Preflight { source_name: endpoint.source_name.clone(), problems: bullet(&problems) })
    }
}

pub fn bullet(problems: &[String]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}
