//! What one instance changes that every instance of its cluster holds in memory.
//!
//! KPI definitions, alert rules, acknowledgements, silences and the notification policy are
//! stored in the app database, which the instances share, but each instance keeps them in its
//! own runtimes. The runtime that makes such a change announces it once it is in force here;
//! in a cluster the announcement reaches every other instance through Redis
//! ([`crate::cluster::state`]), which reads the stored record again (or applies the
//! acknowledgement as it was made). A lone instance's announcer sends nowhere.
//!
//! An announcement names what changed, not its new value: the app database stays the one
//! place that says what is true, and hearing one twice does no harm. The one exception is
//! [`Announcement::AlertResults`], the leader's decisions, which followers show as told.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::fence::Fence;

/// One change an instance made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement {
    /// A KPI was defined, changed or deleted.
    Kpi { id: i64 },
    /// An alert rule was created, changed or deleted.
    AlertRule { id: i64 },
    /// A silence was created or expired.
    Silences,
    /// An alert instance was acknowledged (its time is the instant it was, on the instance that
    /// took it).
    Acknowledged { rule: i64, instance: String, by: Option<String>, at: i64, note: Option<String> },
    /// The notification policy was replaced.
    NotificationPolicy,
    /// A contact point was added or changed: the sending instance starts or restarts its lane.
    ContactPoints,
    /// A token or a subject's tokens were revoked.
    Revocations,
    /// A table's resync was asked of an instance that does not read the sources.
    Resync { table: String, reason: String },
    /// What the leader's alert runtime decided and recorded: the instances it changed (their
    /// new state, or none: back to Normal) and the rules' overflow counts. Unlike the others
    /// this carries values, at the pace of transactions: the app database records transitions,
    /// not every move of a firing instance's value, and followers show what the leader shows.
    AlertResults { epoch: u64, results: serde_json::Value },
}

/// What an instance does with what its engines decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Duty {
    /// Decides alert state as transactions and time pass, records it, writes KPI history and
    /// sends notifications: a lone instance (no fence) or a cluster's leader, whose writes
    /// carry its epoch and are refused once a newer leader has claimed the cluster.
    Lead { fence: Option<Fence> },
    /// Shows what the leader decided (told through [`Announcement::AlertResults`]) and records
    /// none of it.
    Follow,
}

impl Duty {
    pub fn leads(&self) -> bool {
        matches!(self, Duty::Lead { .. })
    }

    pub fn fence(&self) -> Option<&Fence> {
        match self {
            Duty::Lead { fence } => fence.as_ref(),
            Duty::Follow => None,
        }
    }
}

/// Where a runtime tells of its changes; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Announcer(Option<mpsc::UnboundedSender<Announcement>>);

impl Announcer {
    /// An announcer and what it sends, for the cluster's publisher.
    pub fn channel() -> (Announcer, mpsc::UnboundedReceiver<Announcement>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Announcer(Some(tx)), rx)
    }

    /// Whether anybody hears: an instance in a cluster.
    pub fn tells(&self) -> bool {
        self.0.is_some()
    }

    pub fn announce(&self, announcement: Announcement) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(announcement);
        }
    }
}
