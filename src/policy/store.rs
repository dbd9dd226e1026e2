//! The policy in force, and its reload without a restart.
//!
//! Readers take the current version (a cheap `Arc` clone) per request; a reload swaps it in
//! whole, so a request never mixes two policies. A new file is only taken when it loads and
//! fits every table schema known at that moment; otherwise the old policy stays and the log says
//! why — a typo must not lock everyone out, nor let anyone in.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Policy, PolicyError};
use crate::registry::Registry;
use crate::replica::Replica;
use crate::watched_file::WatchedFile;

/// One version of the policy; `generation` grows with every successful reload, so caches
/// built from a policy know when they are stale.
#[derive(Debug, Clone)]
pub struct Current {
    pub generation: u64,
    pub policy: Arc<Policy>,
}

#[derive(Debug, Clone)]
pub struct PolicyStore {
    tx: Arc<watch::Sender<Current>>,
}

impl PolicyStore {
    pub fn new(policy: Policy) -> PolicyStore {
        let (tx, _) = watch::channel(Current { generation: 1, policy: Arc::new(policy) });
        PolicyStore { tx: Arc::new(tx) }
    }

    pub fn current(&self) -> Current {
        self.tx.borrow().clone()
    }

    /// Notified on every reload (live queries reset their role's results on it).
    pub fn subscribe(&self) -> watch::Receiver<Current> {
        self.tx.subscribe()
    }

    pub fn replace(&self, policy: Policy) -> u64 {
        let mut generation = 0;
        self.tx.send_modify(|c| {
            c.generation += 1;
            c.policy = Arc::new(policy);
            generation = c.generation;
        });
        generation
    }
}

/// Reloads the policy from `path` whenever its contents change or the process gets SIGHUP,
/// until `cancel`. A policy rejected for naming a table the server does not watch yet is tried
/// again when tables are added to the configuration.
pub async fn watch_file(
    store: PolicyStore,
    path: PathBuf,
    registry: Arc<Registry>,
    replica: watch::Receiver<Arc<Replica>>,
    cancel: CancellationToken,
) {
    let mut file = WatchedFile::new(path);
    let mut grown = registry.subscribe();
    let mut rejected = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = file.changed() => {}
            Ok(()) = grown.changed(), if rejected => {}
        }
        let name = file.path().display().to_string();
        match reload(file.path(), &registry, &replica.borrow()) {
            Ok(policy) => {
                rejected = false;
                let roles = policy.roles().count();
                let generation = store.replace(policy);
                tracing::info!(file = %name, roles, generation, "policy reloaded");
            }
            Err(e) => {
                rejected = true;
                tracing::warn!(file = %name, error = %e, "policy rejected; the previous policy stays in force")
            }
        }
    }
}

fn reload(path: &std::path::Path, registry: &Registry, replica: &Replica) -> Result<Policy, PolicyError> {
    let policy = Policy::load(path, registry)?;
    policy.check(replica.tables().map(|t| &*t.schema))?;
    Ok(policy)
}
