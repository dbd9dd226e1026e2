//! Real client libraries from npm (tests/clients), run with Node: each script prints one JSON
//! value per line for the test to read. On a machine without Node the tests that need them pass
//! with a "skipped" line on stderr (`.ci/run` installs Node and the libraries).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Why these tests cannot run here (no `node`), printed and returned so a test can end early.
pub fn node_missing(test: &str) -> bool {
    let runs = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !runs {
        eprintln!("skipped {test}: Node.js is not installed (`node --version` failed); `.ci/run` installs it");
    }
    !runs
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// A Node script of tests/clients, printing one JSON value per line.
pub struct Script {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    pub fn start(script: &str, args: &[&str]) -> Script {
        assert!(
            clients_dir().join("node_modules").is_dir(),
            "the client libraries are missing: run `npm ci --prefix tests/clients`"
        );
        let mut child = Command::new("node")
            .arg(clients_dir().join(script))
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script { child, lines }
    }

    /// The next line, as JSON.
    pub async fn next(&mut self) -> Json {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("the client printed within 30 s")
            .expect("reading the client")
            .unwrap_or_else(|| panic!("the client exited"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
