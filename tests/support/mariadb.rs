//! Private MariaDB servers for tests, the way [`super::PgServer`] gives PostgreSQL ones: each
//! on its own port and in its own temporary directory, from the machine's `mariadbd`, with the
//! binlog set up for change data capture (`ROW`, `FULL` image, `FULL` metadata). The system
//! tables come from a `mariadb-install-db` template built once per machine; `root` has no
//! password on the socket and on 127.0.0.1.
//!
//! Readiness is the server accepting a connection (it takes a few hundred milliseconds); a
//! [`super::Watchdog`] kills the server if the test process dies first.

use std::fs;
use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tempfile::TempDir;

use super::{Watchdog, cached_template, free_port, private_tempdir, run_blocking};

/// Bump when the template's contents change.
const TEMPLATE_FORMAT: u32 = 1;

/// How long a start may take before the test fails with the server's log.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct MariaDbServer {
    port: u16,
    dir_path: PathBuf,
    settings: Vec<String>,
    child: std::sync::Mutex<Option<std::process::Child>>,
    watchdog: Option<Watchdog>,
    // Declared last, so it is dropped last: Drop stops the server, then the directory goes.
    dir: TempDir,
}

fn mariadbd() -> PathBuf {
    ["/usr/sbin/mariadbd", "/usr/bin/mariadbd", "/usr/sbin/mysqld"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("mariadbd is not installed (apt-get install mariadb-server)")
}

fn template() -> PathBuf {
    let uid = unsafe { libc::geteuid() };
    cached_template(&format!("opslive-mariadb-template-{uid}-v{TEMPLATE_FORMAT}"), |dir| {
        run_blocking(
            StdCommand::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", dir.join("data").display()))
                .arg(format!("--user={}", current_user()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
            "mariadb-install-db",
        )
        .map(|_| ())
    })
}

fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into())
}

impl MariaDbServer {
    /// A server with the binlog as opslive needs it.
    pub async fn start() -> MariaDbServer {
        MariaDbServer::start_with(&[]).await
    }

    /// Like [`start`](Self::start), with extra `--name=value` options that override the
    /// defaults (`--binlog-row-image=MINIMAL` for a preflight test).
    pub async fn start_with(extra: &[&str]) -> MariaDbServer {
        let template = tokio::task::spawn_blocking(template).await.expect("template task");
        let dir = private_tempdir("opslive-mariadb-");
        let data = dir.path().join("data");
        run_blocking(StdCommand::new("cp").arg("-a").arg(template.join("data")).arg(&data), "cp -a template")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut server = MariaDbServer {
            port: 0,
            dir_path: dir.path().to_path_buf(),
            settings: extra.iter().map(|s| s.to_string()).collect(),
            child: Default::default(),
            watchdog: None,
            dir,
        };
        let mut stop = StdCommand::new("sh");
        stop.arg("-c").arg(format!("kill -9 $(cat {})", server.pid_file().display()));
        server.watchdog = Some(Watchdog::spawn(server.dir.path(), &stop));
        for attempt in 1..=5 {
            server.port = free_port();
            match server.boot().await {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") && attempt < 5 => continue,
                Err(log) => panic!("MariaDB did not start on port {}:\n{log}", server.port),
            }
        }
        unreachable!()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir_path.join("mariadbd.pid")
    }

    fn log_file(&self) -> PathBuf {
        self.dir_path.join("server.log")
    }

    async fn boot(&self) -> Result<(), String> {
        let d = &self.dir_path;
        let log_start = fs::metadata(self.log_file()).map(|m| m.len()).unwrap_or(0);
        let child = StdCommand::new(mariadbd())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("mariadbd.sock").display()))
            .arg(format!("--pid-file={}", self.pid_file().display()))
            .arg(format!("--log-error={}", self.log_file().display()))
            .arg(format!("--port={}", self.port))
            // Its own temporary files: servers sharing /tmp collide on internal temp-table names.
            .arg(format!("--tmpdir={}", d.display()))
            .arg(format!("--user={}", current_user()))
            .arg(format!("--log-bin={}", d.join("data").join("mysql-bin").display()))
            .args(opslive::demo::MARIADB_BINLOG_SETTINGS)
            .args([
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=2",
                "--sync-binlog=0",
                "--skip-name-resolve",
                "--max-connections=200",
            ])
            .args(&self.settings)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn mariadbd: {e}"))?;
        *self.child.lock().expect("child lock") = Some(child);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            if mysql_async::Conn::from_url(self.url("mysql")).await.is_ok() {
                return Ok(());
            }
            let log = super::log_tail(&self.log_file(), log_start, super::LOG_TAIL_LINES);
            if log.contains("Aborting") || std::time::Instant::now() > deadline {
                self.stop();
                return Err(log);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:{port}/{db}`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir_path.join("data")
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let mut c = self.connect("mysql").await;
        c.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.url(name)
    }

    pub async fn connect(&self, db: &str) -> mysql_async::Conn {
        let url = self.url(db);
        mysql_async::Conn::from_url(&url).await.unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }

    /// Kills the server (`SIGKILL`) and waits until it is gone.
    pub async fn kill(&self) {
        self.stop();
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed server again on the same port and files (crash recovery runs).
    pub async fn restart(&self) {
        self.boot().await.unwrap_or_else(|log| panic!("MariaDB did not restart:\n{log}"));
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(w) = self.watchdog.take() {
            w.disarm();
        }
    }
}

/// The server's binlog end as a position (file number << 32 | offset).
pub async fn binlog_end(conn: &mut mysql_async::Conn) -> opslive::change::Position {
    let mut row: mysql_async::Row = conn.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let (file, offset): (String, u64) = (row.take(0).unwrap(), row.take(1).unwrap());
    let number: u64 = file.rsplit_once('.').unwrap().1.parse().unwrap();
    opslive::change::Position((number << 32) | offset)
}
