//! A private MariaDB server for the demo's helpdesk, made from the machine's own binaries.
//!
//! It lives in a directory of the demo's with its own port, socket and binlog set up the way
//! opslive reads it (`ROW`, `FULL` images and metadata, uncompressed), and is stopped on the
//! way out. It runs as the invoking account (`--user`), root included, so its files need no
//! service account. Like the demo's PostgreSQL it gets its own process group, so Ctrl-C reaches
//! the demo only, which stops things in order.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server settings opslive reads a binlog with (tests start their servers with them too).
pub const BINLOG_SETTINGS: [&str; 6] = [
    "--bind-address=127.0.0.1",
    "--server-id=1",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--log-bin-compress=OFF",
];

/// How long the server may take to accept connections, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LocalMariaError {
    #[error(
        "MariaDB's server binaries (mariadbd, mariadb-install-db) were not found in /usr/sbin, /usr/bin: \
         install the Debian package `mariadb-server` (apt-get install mariadb-server)"
    )]
    NotInstalled,
    #[error("cannot prepare {path}: {error}")]
    Dir { path: PathBuf, error: std::io::Error },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
}

/// A server with its data in `<root>/data`, its log in `<root>/mariadb.log`.
pub struct LocalMariaDb {
    server: PathBuf,
    root: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .flat_map(|dir| names.iter().map(move |n| Path::new(dir).join(n)))
        .find(|p| p.exists())
}

/// The account the server runs as: the invoking one (mariadbd runs as root only when told).
fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 { "root".into() } else { "mysql".into() }
    })
}

impl LocalMariaDb {
    /// Creates a fresh server under `root` (an earlier run's server there is stopped and its
    /// files removed), with the system tables and a password-less `root` on 127.0.0.1.
    pub fn create(root: &Path, port: u16) -> Result<LocalMariaDb, LocalMariaError> {
        let server = find(&["mariadbd", "mysqld"]).ok_or(LocalMariaError::NotInstalled)?;
        let install = find(&["mariadb-install-db", "mysql_install_db"]).ok_or(LocalMariaError::NotInstalled)?;
        let root = std::path::absolute(root).map_err(|error| LocalMariaError::Dir { path: root.into(), error })?;
        let db = LocalMariaDb { server, root, port, child: None };
        db.stop_leftover();
        let dir_error = |path: &Path| {
            let path = path.to_path_buf();
            move |error| LocalMariaError::Dir { path, error }
        };
        if db.root.exists() {
            std::fs::remove_dir_all(&db.root).map_err(dir_error(&db.root))?;
        }
        std::fs::create_dir_all(&db.root).map_err(dir_error(&db.root))?;
        let out = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", db.data_dir().display()))
            .arg(format!("--user={}", current_user()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LocalMariaError::Command { what: "mariadb-install-db".into(), detail: e.to_string() })?;
        if !out.status.success() {
            return Err(LocalMariaError::Command {
                what: "mariadb-install-db".into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(db)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn pid_file(&self) -> PathBuf {
        self.root.join("mariadbd.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("mariadb.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&mut self) -> Result<(), LocalMariaError> {
        let child = Command::new(&self.server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--socket={}", self.root.join("mariadbd.sock").display()))
            .arg(format!("--pid-file={}", self.pid_file().display()))
            .arg(format!("--log-error={}", self.log_file().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--tmpdir={}", self.root.display()))
            .arg(format!("--user={}", current_user()))
            .arg(format!("--log-bin={}", self.data_dir().join("mariadb-bin").display()))
            .args(BINLOG_SETTINGS)
            .args(["--innodb-buffer-pool-size=64M", "--skip-name-resolve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| LocalMariaError::Command { what: "starting mariadbd".into(), detail: e.to_string() })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if mysql_async::Conn::from_url(self.url("mysql")).await.is_ok() {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                self.stop();
                return Err(LocalMariaError::Command {
                    what: format!("starting MariaDB on port {}", self.port),
                    detail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server cleanly (SIGTERM), killing it when it takes too long.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SAFETY: signalling a child process of ours by its pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops a server an earlier demo left running under `root` (for tests cleaning up).
    pub fn stop_leftover_at(root: &Path) {
        if let Ok(root) = std::path::absolute(root) {
            LocalMariaDb { server: PathBuf::new(), root, port: 0, child: None }.stop_leftover();
        }
    }

    /// A server an earlier demo left running in this directory (killed before it could stop
    /// it) holds the files and perhaps the port: stop it first.
    fn stop_leftover(&self) {
        let Some(pid) = std::fs::read_to_string(self.pid_file()).ok().and_then(|p| p.trim().parse::<i32>().ok()) else {
            return;
        };
        // Only a mariadbd of this directory: a recycled pid may belong to anything.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(&self.data_dir().display().to_string()) {
            return;
        }
        tracing::info!(dir = %self.data_dir().display(), "stopping the MariaDB a previous demo left running");
        // SAFETY: signalling a process whose command line names our data directory.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}
