//! The server under test: `opslive serve` as a child process of the bench.
//!
//! A separate process, not a task in the bench's runtime, so its CPU and memory can be read on
//! their own from `/proc` and the clients' work does not run on its threads. It is the same
//! executable (`serve` of the binary that runs `bench`), on a configuration written for the run,
//! listening on a port of the kernel's choosing, which it logs. Its logs are read all along (a
//! full pipe would stall it), the last lines kept for an error message. It is stopped with
//! SIGTERM, as an operator would, and killed only if that does not end it.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::BenchError;

/// Log lines kept for an error message.
const KEPT_LINES: usize = 40;

pub struct ServerProcess {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// Starts `exe args…` (`serve` with JSON logs, or `fanout-floor`) and waits (up to
    /// `timeout`) for its `listening` log line.
    pub async fn start<'a>(
        exe: &Path,
        args: impl IntoIterator<Item = &'a OsStr>,
        timeout: Duration,
    ) -> Result<ServerProcess, BenchError> {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        // `serve` reads OPSLIVE_* variables as configuration keys and RUST_LOG over --log: the
        // bench's caller's environment must not change the server it measures.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("OPSLIVE_") || k == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", exe.display())))?;
        let pid = child.id().ok_or_else(|| BenchError::Server("the server exited at once".into()))?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let (listening_tx, listening_rx) = oneshot::channel();
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let kept = logs.clone();
        tokio::spawn(async move {
            let mut listening_tx = Some(listening_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if listening_tx.is_some()
                    && let Some(addr) = listening_addr(&line)
                {
                    let _ = listening_tx.take().expect("checked").send(addr);
                }
                let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let mut server = ServerProcess { child, pid, addr: SocketAddr::from(([127, 0, 0, 1], 0)), logs };
        tokio::select! {
            addr = listening_rx => match addr {
                Ok(addr) => server.addr = addr,
                Err(_) => return Err(server.failed("the server exited before listening").await),
            },
            () = tokio::time::sleep(timeout) => {
                return Err(server.failed(&format!("the server did not listen within {} s", timeout.as_secs())).await)
            }
        }
        Ok(server)
    }

    /// Waits until `/readyz` answers 200 (the replica is consistent), up to `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(&format!("the server exited ({status}) while loading")).await);
            }
            if ready(&url).await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed(&format!("the server was not ready within {} s", timeout.as_secs())).await);
            }
            // The snapshot of the fixtures takes a few seconds; a finer poll would only add load.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process has ended (it should not, during a run).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last log lines, for an error message.
    pub fn recent_logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then SIGKILL if it has not ended within `grace`.
    pub async fn stop(mut self, grace: Duration) -> Result<(), BenchError> {
        if self.child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet (so the
        // pid cannot have been reused).
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => {
                Err(BenchError::Server(format!("the server exited with {status} on SIGTERM\n{}", self.recent_logs())))
            }
            Ok(Err(e)) => Err(BenchError::Server(format!("waiting for the server: {e}"))),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(BenchError::Server(format!("the server did not stop within {} s of SIGTERM", grace.as_secs())))
            }
        }
    }

    async fn failed(&mut self, what: &str) -> BenchError {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        // The log reader may still be taking the last lines in.
        tokio::task::yield_now().await;
        BenchError::Server(format!("{what}; its last log lines:\n{}", self.recent_logs()))
    }
}

/// `GET /readyz` is 200.
pub async fn ready(url: &str) -> Result<bool, BenchError> {
    match http_client()?.get(url).timeout(Duration::from_secs(5)).send().await {
        Ok(r) => Ok(r.status().is_success()),
        Err(_) => Ok(false),
    }
}

fn http_client() -> Result<reqwest::Client, BenchError> {
    // reqwest is built without a default TLS backend; one is installed once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().map_err(|e| BenchError::Server(format!("an HTTP client: {e}")))
}

/// The address of the JSON log line `listening`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"].as_str()? != "listening" {
        return None;
    }
    v["fields"]["addr"].as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let line = r#"{"timestamp":"2026-11-28T12:00:00Z","level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:40123"},"target":"opslive::serve"}"#;
        assert_eq!(listening_addr(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(listening_addr(r#"{"fields":{"message":"replica consistent; streaming"}}"#), None);
        assert_eq!(listening_addr("not json"), None);
    }
}
