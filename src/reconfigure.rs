//! Tables added to the configuration while the server runs.
//!
//! The configuration file is read again when its contents change or on SIGHUP
//! ([`WatchedFile`]). A table that is new for a source already running gets the
//! registry's next id, and its source is asked to resync it: the one per-table mechanism adds
//! it to the publication, copies it at a consistent point while the other tables stream, and
//! lets its changes through from there (see `source::postgres::resync`). Its queries answer
//! `NOT_READY` meanwhile, and it appears in every role's schema the policy grants it to.
//!
//! Everything else a file may change — a new source, a table taken out or renamed, its
//! indexes or excluded columns, the listen address — takes effect at the next start, and the
//! log says so rather than applying half of it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::change::SourceName;
use crate::config::Config;
use crate::registry::{Registry, TableSpec};
use crate::source::ResyncRequests;
use crate::watched_file::WatchedFile;

/// What a changed configuration means for a running server.
#[derive(Debug, Default)]
pub struct Plan {
    /// Tables to start watching now.
    pub added: Vec<Arc<TableSpec>>,
    /// Changes that wait for the next start, one sentence each.
    pub deferred: Vec<String>,
}

/// Compares the tables of `config` with those the server watches.
pub fn plan(running: &Registry, config: &Config) -> Result<Plan, String> {
    let wanted = config.registry().map_err(|e| e.to_string())?;
    let mut plan = Plan::default();
    for spec in wanted.tables() {
        let Some(id) = running.find(&spec.source, &spec.schema, &spec.table) else {
            if running.of_source(&spec.source).is_empty() {
                plan.deferred
                    .push(format!("source `{}` is new: sources are started only when the server starts", spec.source));
            } else {
                plan.added.push(spec);
            }
            continue;
        };
        let now = running.get(id).expect("found");
        if now.name != spec.name || now.indexes != spec.indexes || now.exclude != spec.exclude {
            plan.deferred
                .push(format!("{spec}: a new name, indexes or excluded columns take effect at the next start"));
        }
    }
    for spec in running.tables() {
        if wanted.find(&spec.source, &spec.schema, &spec.table).is_none() {
            plan.deferred.push(format!("{spec} is no longer configured: it stays watched until the next start"));
        }
    }
    plan.deferred.dedup();
    Ok(plan)
}

/// Registers the plan's new tables and asks their sources to copy them; returns how many were
/// added. A table whose GraphQL name is taken is left out, with the reason in the log.
pub fn apply(plan: &Plan, registry: &Registry, sources: &HashMap<SourceName, Arc<ResyncRequests>>) -> usize {
    let mut added = 0;
    for spec in &plan.added {
        let Some(requests) = sources.get(&spec.source) else { continue };
        let registered = registry.add(
            spec.source.clone(),
            &spec.schema,
            &spec.table,
            &spec.name,
            spec.indexes.clone(),
            spec.exclude.clone(),
        );
        match registered {
            Ok(id) => {
                tracing::info!(table = %spec, name = %spec.name, "table added to the configuration; copying it");
                requests.request(id, "added to the configuration".into());
                added += 1;
            }
            Err(e) => tracing::warn!(table = %spec, error = %e, "table not added"),
        }
    }
    for note in &plan.deferred {
        tracing::warn!(note = %note, "configuration change not applied while running");
    }
    added
}

/// Reads the configuration at `path` again whenever it changes or the process gets SIGHUP,
/// and applies what can be applied, until `cancel`.
pub async fn watch(
    path: PathBuf,
    registry: Arc<Registry>,
    sources: HashMap<SourceName, Arc<ResyncRequests>>,
    cancel: CancellationToken,
) {
    let mut file = WatchedFile::new(path);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = file.changed() => {}
        }
        let name = file.path().display().to_string();
        let plan = Config::load(Some(file.path())).map_err(|e| e.to_string()).and_then(|c| plan(&registry, &c));
        match plan {
            Ok(plan) => {
                let added = apply(&plan, &registry, &sources);
                tracing::info!(file = %name, added, "configuration read again");
            }
            Err(e) => tracing::warn!(file = %name, error = %e, "configuration rejected; nothing changes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tables: &str) -> Config {
        Config::from_toml(&format!(
            "[sources.shop]\nkind = \"postgres\"\nurl = \"postgres://u@localhost/shop\"\n{tables}"
        ))
        .unwrap()
    }

    const ORDERS: &str = "[[sources.shop.tables]]\ntable = \"orders\"\nindexes = [\"status\"]\n";
    const ITEMS: &str = "[[sources.shop.tables]]\ntable = \"items\"\n";

    #[test]
    fn new_tables_are_added_and_everything_else_waits_for_a_restart() {
        let running = config(&format!("{ORDERS}{ITEMS}")).registry().unwrap();
        let same = plan(&running, &config(&format!("{ITEMS}{ORDERS}"))).unwrap();
        assert!(same.added.is_empty() && same.deferred.is_empty(), "{same:?}");

        let grown = config(&format!("{ORDERS}{ITEMS}[[sources.shop.tables]]\ntable = \"sales.returns\"\n"));
        let p = plan(&running, &grown).unwrap();
        assert_eq!(p.added.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["shop.sales.returns"]);
        assert!(p.deferred.is_empty(), "{p:?}");

        let mut sources = HashMap::new();
        let requests = Arc::new(ResyncRequests::default());
        sources.insert(SourceName::from("shop"), requests.clone());
        assert_eq!(apply(&p, &running, &sources), 1);
        let id = running.find("shop", "sales", "returns").unwrap();
        assert_eq!(id.0, 2, "the next id; the others keep theirs");
        assert_eq!(requests.take(), [(id, "added to the configuration".to_string())]);
        assert!(plan(&running, &grown).unwrap().added.is_empty(), "added once");

        let shrunk = plan(&running, &config("[[sources.shop.tables]]\ntable = \"orders\"\n")).unwrap();
        assert!(shrunk.added.is_empty());
        assert_eq!(shrunk.deferred.len(), 3, "{shrunk:?}");
        assert!(shrunk.deferred[0].contains("shop.public.orders: a new name, indexes"), "{shrunk:?}");
        assert!(shrunk.deferred[1].contains("shop.public.items is no longer configured"), "{shrunk:?}");

        // `items` moved to another schema: the new one's name is still taken by the old.
        let moved =
            plan(&running, &config(&format!("{ORDERS}[[sources.shop.tables]]\ntable = \"x.items\"\n"))).unwrap();
        assert_eq!(moved.added.len(), 1);
        assert_eq!(apply(&moved, &running, &sources), 0);
        assert!(running.find("shop", "x", "items").is_none());

        let other = Config::from_toml(&format!(
            "[sources.shop]\nkind = \"postgres\"\nurl = \"postgres://u@localhost/shop\"\n{ORDERS}{ITEMS}\
             [sources.crm]\nkind = \"postgres\"\nurl = \"postgres://u@localhost/crm\"\n\
             [[sources.crm.tables]]\ntable = \"accounts\"\n"
        ))
        .unwrap();
        let p = plan(&running, &other).unwrap();
        assert!(p.added.is_empty());
        assert!(p.deferred.iter().any(|d| d.contains("source `crm` is new")), "{p:?}");
    }
}
