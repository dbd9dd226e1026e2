//! Tables the stream does not pass through as they come: those being resynced (their changes
//! are held back, raw, until the table's new copy is in) and those quarantined (their changes
//! are dropped until a resync).
//!
//! Held changes are kept as pgoutput messages, not decoded rows: they are decoded once the
//! resync has installed the table's new shape, which may have other columns than the one the
//! stream knew.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::connection::Endpoint;
use super::pgoutput::Message;
use super::resync::{self, Job, Resynced};
use crate::change::{Position, SourceEvent};
use crate::error::SourceError;
use crate::registry::{Registry, TableId};

/// One source transaction's held messages for one table.
pub struct HeldTx {
    pub position: Position,
    pub commit_ts: i64,
    pub xid: u64,
    pub messages: Vec<Message>,
}

/// A table being resynced.
pub struct Resyncing {
    pub held: Vec<HeldTx>,
    /// Attempts that failed for another reason than a rewrite race, plus the first.
    pub attempts: u32,
    /// Attempts lost to a TRUNCATE or rewrite landing between export and read.
    pub races: u32,
    pub reason: String,
}

/// What a message is to the stream.
pub enum Route {
    Decode,
    Hold(TableId),
    Drop,
}

/// How resync jobs are made for this source.
pub struct Jobs {
    pub endpoint: Endpoint,
    pub source_name: Arc<str>,
    pub slot: String,
    pub publication: String,
    pub chunk_rows: usize,
    pub registry: Arc<Registry>,
    pub out: mpsc::Sender<SourceEvent>,
    /// The stream reads binary tuples: a table copied again must be readable in binary.
    pub binary: bool,
}

pub struct Held {
    pub resyncing: HashMap<TableId, Resyncing>,
    pub quarantined: HashSet<TableId>,
    /// Shape versions handed out, so a resynced table's shape is newer than the last one.
    pub versions: HashMap<TableId, u32>,
    pub running: JoinSet<(TableId, Result<Resynced, SourceError>)>,
    pub jobs: Jobs,
}

impl Held {
    pub fn new(jobs: Jobs, quarantined: impl IntoIterator<Item = TableId>) -> Held {
        Held {
            resyncing: HashMap::new(),
            quarantined: quarantined.into_iter().collect(),
            versions: HashMap::new(),
            running: JoinSet::new(),
            jobs,
        }
    }

    pub fn route(&self, table: Option<TableId>) -> Route {
        match table {
            Some(t) if self.resyncing.contains_key(&t) => Route::Hold(t),
            Some(t) if self.quarantined.contains(&t) => Route::Drop,
            _ => Route::Decode,
        }
    }

    /// Starts copying `table` again; its changes are held from now on. Returns false when a
    /// resync of it is already under way.
    pub fn start(&mut self, table: TableId, reason: String, version: u32) -> bool {
        if self.resyncing.contains_key(&table) {
            return false;
        }
        self.quarantined.remove(&table);
        let v = self.versions.entry(table).or_insert(version);
        *v = (*v).max(version) + 1;
        let version = *v;
        tracing::info!(source = %self.jobs.source_name, table = %self.label(table), reason = %reason, "resyncing the table");
        self.resyncing.insert(table, Resyncing { held: Vec::new(), attempts: 1, races: 0, reason });
        self.spawn(table, version, Duration::ZERO);
        true
    }

    /// Tries a failed resync again after a pause; false when its attempts are spent. A lost
    /// race with a TRUNCATE is retried more often and sooner than other failures: it says
    /// nothing about the table, only that it was rewritten at that moment.
    pub fn retry(&mut self, table: TableId, error: &SourceError) -> bool {
        let label = self.label(table);
        let Some(r) = self.resyncing.get_mut(&table) else { return false };
        let pause = if matches!(error, SourceError::SnapshotUnstable { .. }) {
            if r.races >= resync::RACE_ATTEMPTS {
                return false;
            }
            r.races += 1;
            // Step out of the rhythm of whatever keeps rewriting the table.
            Duration::from_millis(rand::random_range(20..150) * u64::from(r.races.min(8)))
        } else {
            if r.attempts >= resync::ATTEMPTS {
                return false;
            }
            r.attempts += 1;
            Duration::from_millis(500 * u64::from(r.attempts) + rand::random_range(0..250))
        };
        tracing::info!(source = %self.jobs.source_name, table = %label, reason = %r.reason, attempt = r.attempts + r.races, "resyncing the table again");
        // Copying again starts from a new consistent point: what was held is dropped then.
        let version = self.versions.get(&table).copied().unwrap_or(1);
        self.spawn(table, version, pause);
        true
    }

    fn spawn(&mut self, table: TableId, version: u32, pause: Duration) {
        let Some(spec) = self.jobs.registry.get(table) else { return };
        let job = Job {
            endpoint: self.jobs.endpoint.clone(),
            source_name: self.jobs.source_name.clone(),
            slot: self.jobs.slot.clone(),
            publication: self.jobs.publication.clone(),
            spec,
            version,
            chunk_rows: self.jobs.chunk_rows,
            out: self.jobs.out.clone(),
            binary: self.jobs.binary,
        };
        self.running.spawn(async move {
            tokio::time::sleep(pause).await;
            (table, resync::run(job).await)
        });
    }

    pub fn label(&self, table: TableId) -> String {
        self.jobs.registry.get(table).map(|s| s.to_string()).unwrap_or_else(|| format!("table {}", table.0))
    }
}
