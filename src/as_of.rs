//! Where a derived result stands in its source's history: the `asOf` every live query, KPI
//! and alert carries, so a reader can tell which transaction a value reflects.
//!
//! Each runtime after apply follows the batches it is handed with an [`AsOfs`]; a source that
//! has sent no transaction since start stands where the replica has applied it to.

use std::collections::HashMap;

use crate::change::{Position, SourceName};
use crate::pipeline::Batch;
use crate::replica::Replica;

/// The last transaction a result reflects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsOf {
    pub position: Position,
    /// Its commit time, µs since the Unix epoch; unknown before the first transaction.
    pub commit_ts: Option<i64>,
}

/// The last transaction seen per source.
#[derive(Debug, Default)]
pub struct AsOfs(HashMap<SourceName, AsOf>);

impl AsOfs {
    /// Notes the transaction of a batch, if it carries one.
    pub fn follow(&mut self, batch: &Batch) {
        if let Some(tx) = &batch.applied.tx {
            self.0.insert(tx.source.clone(), AsOf { position: tx.position, commit_ts: Some(tx.commit_ts) });
        }
    }

    pub fn of(&self, source: &SourceName, replica: &Replica) -> AsOf {
        self.0
            .get(source)
            .copied()
            .unwrap_or_else(|| AsOf { position: replica.applied_position(source), commit_ts: None })
    }
}
