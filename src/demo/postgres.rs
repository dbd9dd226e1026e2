//! A private PostgreSQL cluster for the demo, made from the machine's own server binaries.
//!
//! It lives in a directory of the demo's, listens on 127.0.0.1 on a port of its own with
//! `wal_level = logical`, and is stopped on the way out. PostgreSQL refuses to run as root, so
//! a root user runs it as the `postgres` account. The server gets its own process group:
//! Ctrl-C in the terminal reaches the demo only, which then stops things in order (simulator,
//! opslive, database) instead of the database dying under a live replication session.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT: &str = "60";

#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error(
        "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found in {looked_in}: install the \
         Debian package `postgresql` (apt-get install postgresql)"
    )]
    NotInstalled { looked_in: String },
    #[error("cannot prepare {path}: {error}")]
    Dir { path: PathBuf, error: std::io::Error },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
}

/// A cluster in `<root>/pg`, its log in `<root>/postgres.log`, its socket in `<root>/sock`.
pub struct LocalPostgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    /// The account that runs the server when the demo runs as root.
    run_as: Option<&'static str>,
    running: bool,
}

impl LocalPostgres {
    /// Finds the server binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql.
    pub fn find_binaries() -> Result<PathBuf, LocalPgError> {
        if let Ok(out) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && has_server(&dir) {
                return Ok(dir);
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, bin)| has_server(bin))
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin).ok_or_else(|| LocalPgError::NotInstalled {
            looked_in: "`pg_config --bindir` or /usr/lib/postgresql/*/bin".into(),
        })
    }

    /// Uses the server binaries in `dir` (a chosen PostgreSQL version).
    pub fn binaries_in(dir: &Path) -> Result<PathBuf, LocalPgError> {
        if has_server(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(LocalPgError::NotInstalled { looked_in: dir.display().to_string() })
        }
    }

    /// Creates a fresh cluster under `root`, first stopping one a previous run left running
    /// there (killed before it could clean up) and removing its files.
    pub fn create(bin: PathBuf, root: &Path, port: u16) -> Result<LocalPostgres, LocalPgError> {
        // The server's tools run from `/` (see `run_tool`): relative paths would land there.
        let root = &std::path::absolute(root).map_err(|error| LocalPgError::Dir { path: root.into(), error })?;
        let pg = LocalPostgres { bin, root: root.to_path_buf(), port, run_as: service_account(), running: false };
        pg.stop_leftover();
        let dir_error = |path: &Path| {
            let path = path.to_path_buf();
            move |error| LocalPgError::Dir { path, error }
        };
        if pg.data_dir().exists() {
            std::fs::remove_dir_all(pg.data_dir()).map_err(dir_error(&pg.data_dir()))?;
        }
        for dir in [root.to_path_buf(), pg.data_dir(), pg.socket_dir()] {
            std::fs::create_dir_all(&dir).map_err(dir_error(&dir))?;
        }
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).map_err(dir_error(root))?;
        std::fs::write(pg.log_file(), b"").map_err(dir_error(&pg.log_file()))?;
        if let Some(user) = pg.run_as {
            run(Command::new("chown").arg("-R").arg(format!("{user}:")).arg(root), "chown")?;
        }
        pg.run_tool("initdb")
            .arg("-D")
            .arg(pg.data_dir())
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"])
            .output()
            .map_err(|e| LocalPgError::Command { what: "initdb".into(), detail: e.to_string() })
            .and_then(|out| check(out, "initdb"))?;
        Ok(pg)
    }

    pub fn start(&mut self) -> Result<(), LocalPgError> {
        self.start_with(&[])
    }

    /// Starts the server with extra settings (`name`, `value`) on top of the ones logical
    /// replication needs, e.g. `fsync = off` for a load test that measures opslive, not the disk.
    pub fn start_with(&mut self, settings: &[(&str, &str)]) -> Result<(), LocalPgError> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=10 \
             -c max_wal_senders=10",
            self.port,
            self.socket_dir().display()
        );
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = self.log_file();
        let mut cmd = self.run_tool("pg_ctl");
        cmd.arg("start").arg("-D").arg(self.data_dir()).args(["-w", "-t", PG_CTL_TIMEOUT, "-o", &options, "-l"]);
        cmd.arg(&log).process_group(0);
        let out =
            cmd.output().map_err(|e| LocalPgError::Command { what: "pg_ctl start".into(), detail: e.to_string() });
        match out.and_then(|out| check(out, "pg_ctl start")) {
            Ok(()) => {
                self.running = true;
                Ok(())
            }
            Err(LocalPgError::Command { what, detail }) => {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log_text.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(LocalPgError::Command { what, detail: format!("{detail}\n{}", tail.join("\n")) })
            }
            Err(e) => Err(e),
        }
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing committed is lost).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        if let Err(e) = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", PG_CTL_TIMEOUT]) {
            tracing::warn!(error = %e, "stopping the demo database");
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT]);
        }
    }

    /// Stops a server a previous run under `root` left running (killed before it could clean
    /// up), if there is one.
    pub fn stop_leftover_at(root: &Path) {
        if let (Ok(bin), Ok(root)) = (LocalPostgres::find_binaries(), std::path::absolute(root)) {
            let pg = LocalPostgres { bin, root, port: 0, run_as: service_account(), running: false };
            pg.stop_leftover();
        }
    }

    fn stop_leftover(&self) {
        if self.data_dir().join("postmaster.pid").exists() {
            tracing::info!(dir = %self.data_dir().display(), "stopping the database a previous demo left running");
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT]);
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("pg")
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), LocalPgError> {
        let mut cmd = self.run_tool("pg_ctl");
        cmd.arg("-D").arg(self.data_dir()).args(args).process_group(0);
        run(&mut cmd, "pg_ctl")
    }

    /// A command running one of the server's tools as the account that owns the cluster.
    fn run_tool(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // The account may not be allowed into the caller's directory.
        cmd.current_dir("/").stdin(Stdio::null());
        cmd
    }
}

impl Drop for LocalPostgres {
    /// An error on the way (or a panic) still leaves no server running.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a directory can be used for a cluster run by `postgres` when the demo runs as root:
/// that account must be able to walk down to it.
pub fn reachable_by_service_account(dir: &Path) -> bool {
    if !is_root() {
        return true;
    }
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .ancestors()
        .skip(1)
        .filter(|a| a.exists())
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file())
}

fn service_account() -> Option<&'static str> {
    is_root().then_some("postgres")
}

fn is_root() -> bool {
    // The owner of /proc/self is the effective uid; this avoids a libc dependency for one call.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), LocalPgError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LocalPgError::Command { what: what.into(), detail: e.to_string() })?;
    check(out, what)
}

fn check(out: Output, what: &str) -> Result<(), LocalPgError> {
    if out.status.success() {
        return Ok(());
    }
    Err(LocalPgError::Command {
        what: what.into(),
        detail: format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
    })
}
