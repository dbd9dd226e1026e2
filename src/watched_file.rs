//! A file the server reads again while it runs: when its contents change (compared once a
//! second — cheaper than a file-notification dependency for a small file, and it catches
//! editors that replace the file) or when the process gets SIGHUP.

use std::path::{Path, PathBuf};
use std::time::Duration;

const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct WatchedFile {
    path: PathBuf,
    last: Option<Vec<u8>>,
    tick: tokio::time::Interval,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl WatchedFile {
    /// Starts from the contents the file has now.
    pub fn new(path: PathBuf) -> WatchedFile {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        WatchedFile {
            last: std::fs::read(&path).ok(),
            path,
            tick,
            #[cfg(unix)]
            hangup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns when the contents differ from the last seen, or on SIGHUP (read it again even
    /// if unchanged: the operator asked).
    pub async fn changed(&mut self) {
        loop {
            #[cfg(unix)]
            let signalled = async {
                match self.hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            let forced = tokio::select! {
                _ = self.tick.tick() => false,
                _ = signalled => true,
            };
            let now = std::fs::read(&self.path).ok();
            if forced || now != self.last {
                self.last = now;
                return;
            }
        }
    }
}
