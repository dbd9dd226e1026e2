//! Running `opslive serve` as a process with JSON logs, and waiting on its log lines.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// Writes `opslive.toml` in `dir`: one PostgreSQL source `shop` at `url` watching `tables`.
pub fn write_config(dir: &Path, url: &str, tables: &[&str]) -> std::path::PathBuf {
    write_config_with(dir, url, tables, "")
}

/// Like [`write_config`], with `top` (top-level keys and tables) first. Written whole and
/// renamed into place, so a server reading the file again never sees half of it.
pub fn write_config_with(dir: &Path, url: &str, tables: &[&str], top: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    let mut text = format!(
        "{top}data_dir = \"{}\"\n[checkpoint]\ninterval_seconds = 0.5\n[sources.shop]\nkind = \"postgres\"\nurl = \"{url}\"\nheartbeat_seconds = 1\n",
        data.display()
    );
    for t in tables {
        text.push_str(&format!("[[sources.shop.tables]]\ntable = \"{t}\"\n"));
    }
    let path = dir.join("opslive.toml");
    let staged = dir.join("opslive.toml.new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    path
}

pub struct Serve {
    pub child: Child,
    /// Every log line, read as it comes so the server never blocks on a full pipe.
    logs: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// Reads the server's log lines into a channel; with `SERVE_TEST_LOGS=<dir>` they are also
/// appended to a file there, for looking at a failed run.
fn pump(mut lines: Lines<BufReader<ChildStderr>>, pid: u32) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut file = std::env::var_os("SERVE_TEST_LOGS").map(|dir| {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(std::path::Path::new(&dir).join(format!("serve-{pid}.log"))).unwrap()
    });
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(f) = file.as_mut() {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
            let _ = tx.send(line);
        }
    });
    rx
}

impl Serve {
    pub fn start(config: &Path) -> Serve {
        Serve::start_binary(Path::new(env!("CARGO_BIN_EXE_opslive")), config)
    }

    /// A server of another build (a benchmark comparing two builds in one run).
    pub fn start_binary(binary: &Path, config: &Path) -> Serve {
        let mut child = Command::new(binary)
            .args(["serve", "--config", config.to_str().unwrap(), "--log-format", "json"])
            .env("OPSLIVE_LOG", std::env::var("SERVE_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into()))
            // Tests run in parallel: each server takes a free port and logs it.
            .env("OPSLIVE_LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap_or_default();
        let logs = pump(BufReader::new(child.stderr.take().unwrap()).lines(), pid);
        Serve { child, logs }
    }

    /// Reads log lines until one whose message contains `what`; `check` sees every line read.
    pub async fn wait_log(&mut self, what: &str, check: impl Fn(&str)) -> serde_json::Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.logs.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {what:?} within 60 s"))
                .unwrap_or_else(|| panic!("serve exited before logging {what:?}"));
            check(&line);
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if v["fields"]["message"].as_str().is_some_and(|m| m.contains(what)) {
                return v;
            }
        }
    }

    /// Reads lines until one that contains `what`, JSON or not (the last words of a server
    /// that stops with an error are plain text).
    pub async fn wait_text(&mut self, what: &str) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.logs.recv())
                .await
                .unwrap_or_else(|_| panic!("no line with {what:?} within 60 s"))
                .unwrap_or_else(|| panic!("serve exited before writing {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    /// Waits for the HTTP server's address.
    pub async fn wait_listening(&mut self) -> std::net::SocketAddr {
        let v = self.wait_log("listening", |_| {}).await;
        v["fields"]["addr"].as_str().unwrap().parse().unwrap()
    }

    /// Waits for a line with `what` that a source logs as it starts, and for "listening",
    /// in whichever order they come (the source starts beside the server); returns both.
    #[allow(dead_code)]
    pub async fn wait_start_log(&mut self, what: &str) -> (serde_json::Value, std::net::SocketAddr) {
        let addr = std::cell::Cell::new(None);
        let found = self
            .wait_log(what, |line| {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["fields"]["message"] == "listening"
                {
                    addr.set(v["fields"]["addr"].as_str().and_then(|a| a.parse().ok()));
                }
            })
            .await;
        let addr = match addr.get() {
            Some(addr) => addr,
            None => self.wait_listening().await,
        };
        (found, addr)
    }

    /// Sends SIGTERM and asserts a clean exit.
    pub async fn terminate(self) {
        self.terminate_with_log().await;
    }

    /// Sends SIGTERM, asserts a clean exit and returns every log line written from then on.
    pub async fn terminate_with_log(mut self) -> Vec<String> {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let mut lines = Vec::new();
        let read = async {
            while let Some(line) = self.logs.recv().await {
                lines.push(line);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("serve's log ends within 30 s");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "serve exited with {status}: {lines:#?}");
        lines
    }
}
