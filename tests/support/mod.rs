//! Integration-test support: private, throwaway database servers.
//!
//! opslive's behaviour depends on real servers: logical replication slots, WAL
//! positions, crash recovery. Mocks can't show any of that, and one shared
//! server would couple tests that run in parallel (slot names, database names,
//! and a crash test would take down everyone else's server). So every test that
//! needs a database starts its own with [`PgServer::start`], on its own port, in
//! its own temporary directory. The server is stopped and the directory removed
//! when the handle is dropped.
//!
//! How it stays cheap:
//! * `initdb` runs once per machine, not once per server. The result is cached as
//!   a template in `$TMPDIR/opslive-pg-template-<major>-<uid>-v<format>`, shared
//!   by threads through a mutex and by processes (nextest runs each test in its
//!   own process) through an atomic `rename`. Each server gets a `cp -a` of it.
//! * Durability is switched off (`fsync`, `synchronous_commit`,
//!   `full_page_writes`). This is safe for process crashes ([`PgServer::kill`]),
//!   because the OS page cache survives them, **except** that with
//!   `synchronous_commit=off` the last few hundred milliseconds of commits can be
//!   lost on `kill()`. A test that checks data survives a crash must run
//!   `SET synchronous_commit = on` in its session, or start the server with
//!   `start_with(&[("synchronous_commit", "on")])`.
//! * Readiness comes from `pg_ctl start -w`, which waits for the server itself.
//!   There are no fixed sleeps.
//!
//! Cleanup: `Drop` stops the server (`pg_ctl stop -m immediate`) and removes the
//! directory. Drop also runs when a test panics. If the test process dies before
//! any destructor can run (SIGKILL, abort, a harness timeout), a per-server
//! [`Watchdog`] does the same cleanup.
//!
//! postgres refuses to run as root. When the tests run as root, every server
//! command runs as the `postgres` OS account via `runuser`, and the files that
//! account needs are chowned to it. When the tests don't run as root, the
//! commands run as the current user.
//!
//! Adding a sibling (`MariaDb`, `Redis`): reuse the shared helpers below.
//! [`private_tempdir`] creates the directory, [`RunAs`] runs commands as the
//! service account (`mysql`, `redis`), [`free_port`] picks a port,
//! [`cached_template`] caches `mariadb-install-db` output the way `initdb` output
//! is cached, [`Watchdog`] cleans up after a killed test process, and
//! [`log_tail`] adds the server log to a failure message. Then copy
//! `PgServer`'s shape: `start`/`start_with`, `port`, `url`, `connect`, `kill`,
//! `restart`, and a synchronous `Drop`.

#![allow(dead_code)] // each test binary uses a different subset of this module

pub mod alerting;
pub mod capture;
pub mod graphql;
pub mod http;
pub mod mariadb;
pub mod node;
pub mod pipeline;
pub mod proxy;
pub mod redis;
pub mod serve;
pub mod smtp;
pub mod standin;
pub mod tls;
pub mod ws;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;
use tokio::process::Command;

// ---------------------------------------------------------------------------
// Shared helpers (for PgServer now, and for MariaDb / Redis later)
// ---------------------------------------------------------------------------

/// Parent of every per-server directory. The service account must be able to
/// traverse it, which `$TMPDIR` (for example under /root) can't guarantee.
const DEFAULT_SERVER_DIR_PARENT: &str = "/tmp";

/// Environment variable that moves the per-server directories elsewhere, e.g.
/// `OPSLIVE_TEST_SERVER_DIR=/dev/shm`. On a VM disk where file creation is slow,
/// tmpfs makes copying the ~1000-file template about ten times faster. The
/// directory must be traversable by the service account.
const SERVER_DIR_PARENT_ENV: &str = "OPSLIVE_TEST_SERVER_DIR";

fn server_dir_parent() -> PathBuf {
    std::env::var_os(SERVER_DIR_PARENT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVER_DIR_PARENT))
}

/// Lines of server log to include in a failure message.
const LOG_TAIL_LINES: usize = 60;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// It binds port 0 and drops the listener, so another process can still take
/// the port before the server binds it. Callers retry in that case (see
/// [`PgServer::start`]). Inside one test process the same port is never
/// returned twice, so servers started in parallel threads can't collide.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("free_port: the OS kept returning ports this process already handed out");
}

fn current_uid() -> u32 {
    // The owner of /proc/self is this process's effective uid. Reading it avoids a libc dependency.
    fs::metadata("/proc/self").expect("stat /proc/self").uid()
}

/// Creates a fresh directory under /tmp (or `$OPSLIVE_TEST_SERVER_DIR`) with
/// mode 0755, so a service account can traverse into the subdirectories it
/// owns. The directory is removed when the value is dropped.
pub fn private_tempdir(prefix: &str) -> TempDir {
    let parent = server_dir_parent();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("create temp dir under {}: {e}", parent.display()));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 0755 {}: {e}", dir.path().display()));
    dir
}

/// The OS account that runs a server's commands. When the tests run as root,
/// this is a service account (postgres and mariadbd refuse to run as root).
/// Otherwise it is the current user.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    user: Option<&'static str>,
}

impl RunAs {
    pub fn service(user: &'static str) -> RunAs {
        RunAs { user: (current_uid() == 0).then_some(user) }
    }

    /// Builds a command that runs `program` as this account. Its working directory
    /// is `/`, because the account may not be able to enter the caller's directory.
    pub fn std_command(&self, program: &Path) -> StdCommand {
        let mut cmd = match self.user {
            Some(user) => {
                let mut cmd = StdCommand::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => StdCommand::new(program),
        };
        cmd.current_dir("/");
        cmd
    }

    pub fn command(&self, program: &Path) -> Command {
        Command::from(self.std_command(program))
    }

    /// A `chown -R` command that gives `paths` to this account. When no account
    /// switch is needed, it is `None`.
    fn chown_command(&self, paths: &[&Path]) -> Option<StdCommand> {
        let user = self.user?;
        let mut cmd = StdCommand::new("chown");
        cmd.arg("-R").arg(format!("{user}:")).args(paths);
        Some(cmd)
    }

    pub async fn chown(&self, paths: &[&Path]) {
        if let Some(cmd) = self.chown_command(paths) {
            run(&mut Command::from(cmd), "chown").await.unwrap_or_else(|e| panic!("{e}"));
        }
    }

    pub fn chown_blocking(&self, paths: &[&Path]) -> Result<(), String> {
        match self.chown_command(paths) {
            Some(mut cmd) => run_blocking(&mut cmd, "chown").map(drop),
            None => Ok(()),
        }
    }
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command to completion and captures its output. An error is returned
/// if the command can't be spawned or exits with a failure status.
pub async fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("{what}: could not spawn: {e}"))?;
    if out.status.success() { Ok(out) } else { Err(describe(what, &out)) }
}

/// The blocking version of [`run`], for template building and `Drop`.
pub fn run_blocking(cmd: &mut StdCommand, what: &str) -> Result<Output, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: could not spawn: {e}"))?;
    if out.status.success() { Ok(out) } else { Err(describe(what, &out)) }
}

/// Returns up to the last `max_lines` lines that were written to `path` after
/// byte `from`. Read errors are returned as text, because the result goes into a
/// panic message.
pub fn log_tail(path: &Path, from: u64, max_lines: usize) -> String {
    let mut text = Vec::new();
    let read = fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.read_to_end(&mut text)
    });
    if let Err(e) = read {
        return format!("<could not read {}: {e}>", path.display());
    }
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// File that marks a cached template as complete.
const TEMPLATE_COMPLETE: &str = ".complete";

/// Returns the directory of the template named `key`, building it first if
/// needed. The template is built once per machine.
///
/// * In one process, a mutex makes parallel tests wait for the first builder.
/// * Across processes (nextest), the template is built in a private staging
///   directory and then `rename`d to `$TMPDIR/<key>`. The rename is atomic, so
///   another process sees either nothing or a complete template. If two
///   processes race, one rename fails, that process uses the winner's copy, and
///   its own staging copy is deleted.
///
/// `build` gets an empty directory, mode 0755 and owned by the caller, to fill.
/// Put anything into `key` that changes what `build` produces: a version, a
/// format number. Old templates are then never reused. `build` runs in a
/// staging directory where the server directories go (/tmp by default), so a
/// service account can write there.
pub fn cached_template(key: &str, build: impl FnOnce(&Path) -> Result<(), String>) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    let complete = |dir: &Path| dir.join(TEMPLATE_COMPLETE).is_file();

    // The path is checked again on every call, in case someone removed it.
    if let Some(dir) = built.get(key).filter(|d| complete(d)) {
        return dir.clone();
    }
    let cache_root = std::env::temp_dir();
    let final_dir = cache_root.join(key);
    if !complete(&final_dir) {
        let staging = private_tempdir(&format!(".{key}.staging-"));
        build(staging.path()).unwrap_or_else(|e| panic!("building template {key}: {e}"));
        fs::write(staging.path().join(TEMPLATE_COMPLETE), b"")
            .unwrap_or_else(|e| panic!("writing template marker: {e}"));
        publish_template(staging, &cache_root, &final_dir);
    }
    built.insert(key.to_owned(), final_dir.clone());
    final_dir
}

/// Moves a complete staging directory to `final_dir` atomically. If another
/// process published a template there first, its copy is kept.
fn publish_template(staging: TempDir, cache_root: &Path, final_dir: &Path) {
    let complete = final_dir.join(TEMPLATE_COMPLETE);
    let mut source = staging.path().to_path_buf();
    // Keeps the cross-device copy alive (and removes it) until publishing is done.
    let mut _sibling: Option<TempDir> = None;
    for _ in 0..3 {
        match fs::rename(&source, final_dir) {
            Ok(()) => {
                // The staging TempDir's own path is gone now; dropping it does nothing.
                drop(staging);
                return;
            }
            Err(_) if complete.is_file() => return, // lost a race; use the winner's copy
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                // $TMPDIR and the staging directory are on different filesystems.
                // Copy to a sibling of final_dir first, so the last step is still
                // an atomic rename.
                let sibling = tempfile::Builder::new()
                    .prefix(".opslive-template-partial-")
                    .tempdir_in(cache_root)
                    .unwrap_or_else(|e| panic!("temp dir in {}: {e}", cache_root.display()));
                let dest = sibling.path().join("t");
                run_blocking(StdCommand::new("cp").arg("-a").arg(&source).arg(&dest), "cp -a template")
                    .unwrap_or_else(|e| panic!("{e}"));
                source = dest;
                _sibling = Some(sibling);
            }
            Err(_) if final_dir.exists() => {
                // Left over from something else and incomplete (this module never
                // publishes an incomplete template). Move it aside, then delete it.
                let junk =
                    cache_root.join(format!(".opslive-template-junk-{}-{}", std::process::id(), rand::random::<u32>()));
                if fs::rename(final_dir, &junk).is_ok() {
                    let _ = fs::remove_dir_all(&junk);
                }
            }
            Err(e) => panic!("publishing template to {}: {e}", final_dir.display()),
        }
    }
    panic!("could not publish template to {}", final_dir.display());
}

/// Cleans up a server after the test process dies without running `Drop`
/// (SIGKILL, `abort`, a harness timeout).
///
/// The watchdog is a small `sh` that blocks reading a pipe. Only this process
/// holds the write end, and the kernel closes it when the process exits for
/// any reason. When `read` returns, `sh` runs the stop command and removes the
/// directory. The script doesn't poll and doesn't sleep. It ignores
/// INT/TERM/HUP/QUIT and runs in its own process group, so Ctrl-C or a
/// group-wide signal aimed at the test process doesn't kill it first. The pipe
/// is close-on-exec, so servers started later don't inherit it. `Drop` disarms
/// the watchdog by killing it, after doing the cleanup itself.
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    pub fn spawn(dir: &Path, stop: &StdCommand) -> Watchdog {
        const SCRIPT: &str = r#"trap '' HUP INT TERM QUIT
dir=$1; shift
read -r _
"$@" >/dev/null 2>&1
rm -rf -- "$dir""#;
        let child = StdCommand::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("opslive-watchdog")
            .arg(dir)
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn watchdog: {e}"));
        Watchdog { child }
    }

    /// Stops the watchdog without running its cleanup.
    pub fn disarm(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// Bump when the PostgreSQL template's contents change (initdb flags,
/// pg_hba.conf, the include line), so old cached templates aren't reused.
const PG_TEMPLATE_FORMAT: u32 = 1;

/// Retries when the chosen port is taken before the server binds it.
const PG_START_ATTEMPTS: usize = 5;

/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// The PostgreSQL installation the tests use.
#[derive(Debug)]
struct PgInstall {
    bin_dir: PathBuf,
    /// Major version, for example "15".
    major: String,
}

fn pg_install() -> &'static PgInstall {
    static INSTALL: OnceLock<PgInstall> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let bin_dir = pg_bin_dir();
        let out = run_blocking(StdCommand::new(bin_dir.join("postgres")).arg("-V"), "postgres -V")
            .unwrap_or_else(|e| panic!("{e}"));
        // "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
        let version = String::from_utf8_lossy(&out.stdout).into_owned();
        let major: String =
            version.split(')').nth(1).unwrap_or("").trim_start().chars().take_while(char::is_ascii_digit).collect();
        assert!(!major.is_empty(), "can't parse PostgreSQL version from {version:?}");
        PgInstall { bin_dir, major }
    })
}

/// The PostgreSQL binaries the demo would use (`pg_config --bindir`, else the newest
/// /usr/lib/postgresql/*/bin).
fn pg_bin_dir() -> PathBuf {
    opslive::demo::LocalPostgres::find_binaries().unwrap_or_else(|e| panic!("{e}"))
}

/// Returns the cached initdb template. The cluster is in `<template>/data`.
async fn pg_template(install: &'static PgInstall, run_as: RunAs) -> PathBuf {
    let key = format!("opslive-pg-template-{}-{}-v{PG_TEMPLATE_FORMAT}", install.major, current_uid());
    let join =
        tokio::task::spawn_blocking(move || cached_template(&key, |dir| build_pg_template(install, run_as, dir)));
    match join.await {
        Ok(dir) => dir,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("template task: {e}"),
        },
    }
}

fn build_pg_template(install: &PgInstall, run_as: RunAs, dir: &Path) -> Result<(), String> {
    let data = dir.join("data");
    fs::create_dir(&data).map_err(|e| format!("mkdir {}: {e}", data.display()))?;
    run_as.chown_blocking(&[&data])?;
    run_blocking(
        run_as
            .std_command(&install.bin_dir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"])
            .arg("--no-instructions"),
        "initdb",
    )?;
    // Trust everything local: the unix socket and 127.0.0.1, for normal and
    // replication connections. The server listens on nothing else.
    fs::write(
        data.join("pg_hba.conf"),
        "# Written by opslive tests/support: test servers trust local connections.\n\
         local all         all              trust\n\
         host  all         all 127.0.0.1/32 trust\n\
         local replication all              trust\n\
         host  replication all 127.0.0.1/32 trust\n",
    )
    .map_err(|e| format!("write pg_hba.conf: {e}"))?;
    // Each server writes its own settings (port, socket dir, ...) to opslive.conf.
    // The include is last in the file, so those settings take precedence.
    fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(b"\n# opslive tests/support\ninclude 'opslive.conf'\n"))
        .map_err(|e| format!("append to postgresql.conf: {e}"))
}

/// A private PostgreSQL server for one test. Dropping it stops the server and
/// deletes its files.
///
/// Connect as `postgres` (a superuser, trust auth) through [`PgServer::url`] or
/// [`PgServer::connect`]. Replication connections (`replication=database`) are
/// allowed.
pub struct PgServer {
    port: u16,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    bin_dir: PathBuf,
    run_as: RunAs,
    watchdog: Option<Watchdog>,
    // Declared last, so it is dropped last: Drop stops the server, then the directory goes.
    dir: TempDir,
}

impl PgServer {
    /// Starts a private server: wal_level=logical, max_replication_slots=20,
    /// max_wal_senders=20, listen_addresses=127.0.0.1, a free port, unix socket
    /// dir inside the temp dir, fsync=off, synchronous_commit=off,
    /// full_page_writes=off, TimeZone='UTC', trust auth for local and host
    /// 127.0.0.1.
    pub async fn start() -> PgServer {
        PgServer::start_with(&[]).await
    }

    /// Like [`start`](Self::start), plus extra settings that override the defaults
    /// (e.g. `("wal_level", "replica")` for a failure test, or
    /// `("synchronous_commit", "on")` for crash-durability tests).
    pub async fn start_with(settings: &[(&str, &str)]) -> PgServer {
        for (name, value) in settings {
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.".contains(c)),
                "bad PostgreSQL setting name {name:?}"
            );
            assert!(!value.contains(['\n', '\r']), "bad value for {name}: {value:?}");
        }
        let install = pg_install();
        let run_as = RunAs::service("postgres");
        let template = pg_template(install, run_as).await;

        let dir = private_tempdir("opslive-pg-");
        let data_dir = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        let log_file = dir.path().join("server.log");
        fs::create_dir(&socket_dir).unwrap_or_else(|e| panic!("mkdir socket dir: {e}"));
        fs::File::create(&log_file).unwrap_or_else(|e| panic!("create log file: {e}"));
        run(Command::new("cp").arg("-a").arg(template.join("data")).arg(&data_dir), "cp -a template")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        run_as.chown(&[&data_dir, &socket_dir, &log_file]).await;

        let mut server = PgServer {
            port: 0,
            data_dir,
            socket_dir,
            log_file,
            bin_dir: install.bin_dir.clone(),
            run_as,
            watchdog: None,
            dir,
        };
        server.watchdog = Some(Watchdog::spawn(server.dir.path(), &server.stop_command_std()));
        // If this panics or the future is dropped, `server` is dropped and cleans up.
        server.boot(settings).await;
        server
    }

    /// Picks a port and starts the server. It retries with another port when the
    /// port was taken between `free_port` and the bind.
    async fn boot(&mut self, settings: &[(&str, &str)]) {
        for attempt in 1..=PG_START_ATTEMPTS {
            self.port = free_port();
            self.write_config(settings);
            let log_start = file_len(&self.log_file);
            let result = run(
                self.pg_ctl().args(["start", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-l"]).arg(&self.log_file),
                "pg_ctl start",
            )
            .await;
            let Err(pg_ctl_error) = result else { return };
            // If pg_ctl timed out, the postmaster may still be running. Stop it.
            self.stop_immediate_blocking();
            let log = log_tail(&self.log_file, log_start, LOG_TAIL_LINES);
            if log.contains("Address already in use") && attempt < PG_START_ATTEMPTS {
                continue;
            }
            panic!(
                "PostgreSQL did not start (attempt {attempt}/{PG_START_ATTEMPTS}, port {}, data {}):\n\
                 {pg_ctl_error}\n--- tail of {} ---\n{log}",
                self.port,
                self.data_dir.display(),
                self.log_file.display(),
            );
        }
        unreachable!()
    }

    /// Writes this server's settings to `opslive.conf`, which the template's
    /// postgresql.conf includes. Every start and restart reads it, so the port
    /// stays the same.
    fn write_config(&self, extra: &[(&str, &str)]) {
        let port = self.port.to_string();
        let socket_dir = self.socket_dir.to_str().expect("utf-8 temp path");
        let defaults = [
            ("listen_addresses", "127.0.0.1"),
            ("port", port.as_str()),
            ("unix_socket_directories", socket_dir),
            ("wal_level", "logical"),
            ("max_replication_slots", "20"),
            ("max_wal_senders", "20"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("TimeZone", "UTC"),
        ];
        let mut conf = String::from("# Written by opslive tests/support. Later lines win.\n");
        for (name, value) in defaults.iter().chain(extra) {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        // Written as root; the file is 0644, so postgres can read it.
        fs::write(self.data_dir.join("opslive.conf"), conf).unwrap_or_else(|e| panic!("write opslive.conf: {e}"));
    }

    /// `pg_ctl -D <data>` as the server's account.
    fn pg_ctl(&self) -> Command {
        Command::from(self.pg_ctl_std())
    }

    fn pg_ctl_std(&self) -> StdCommand {
        let mut cmd = self.run_as.std_command(&self.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(&self.data_dir);
        cmd
    }

    fn stop_command_std(&self) -> StdCommand {
        let mut cmd = self.pg_ctl_std();
        cmd.args(["stop", "-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT_SECS]);
        cmd
    }

    /// Stops the server the way a crash would. `pg_ctl stop` waits until the
    /// postmaster and all its children have exited. Errors (e.g. "not running")
    /// are ignored.
    fn stop_immediate_blocking(&self) {
        let _ = self.stop_command_std().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:{port}/{db}`. `db` is not escaped, so use
    /// plain names.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server log. It is deleted with the server, so read it before the drop.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Runs `CREATE DATABASE` and returns the new database's URL.
    pub async fn create_database(&self, name: &str) -> String {
        let client = self.connect("postgres").await;
        let ident = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("CREATE DATABASE {ident}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {ident} on port {}: {e}", self.port));
        self.url(name)
    }

    /// Connects to `db` with tokio-postgres and spawns the connection task on
    /// the current runtime. The task ends silently when the server goes away,
    /// which is normal in `kill` tests.
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let url = self.url(db);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Crashes the server (`pg_ctl stop -m immediate`). No shutdown checkpoint is
    /// written, and the next start runs crash recovery. Commits made with
    /// `synchronous_commit=off` (the default here) in the last moments may be lost.
    pub async fn kill(&self) {
        run(
            self.pg_ctl().args(["stop", "-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT_SECS]),
            "pg_ctl stop -m immediate",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- tail of server log ---\n{}", self.log_tail()));
    }

    /// Restarts the server on the same port and settings (`pg_ctl restart -m fast`).
    /// A running server is shut down cleanly first. A server stopped by
    /// [`kill`](Self::kill) is started again and runs crash recovery. It returns
    /// once the server accepts connections.
    pub async fn restart(&self) {
        let log_start = file_len(&self.log_file);
        run(
            self.pg_ctl().args(["restart", "-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-l"]).arg(&self.log_file),
            "pg_ctl restart -m fast",
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- tail of {} ---\n{}",
                self.log_file.display(),
                log_tail(&self.log_file, log_start, LOG_TAIL_LINES)
            )
        });
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_file, 0, LOG_TAIL_LINES)
    }

    /// Turns TLS on (`ssl = on`, by reload) with this certificate and key (PEM), and returns once
    /// a new session reports it on. Plain connections are still accepted, as pg_hba's `host`
    /// lines allow both.
    #[allow(dead_code)]
    pub async fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        let cert = self.data_dir.join("server.crt");
        let key = self.data_dir.join("server.key");
        fs::write(&cert, cert_pem).unwrap();
        fs::write(&key, key_pem).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        self.run_as.chown(&[&cert, &key]).await;
        let admin = self.connect("postgres").await;
        admin.batch_execute("ALTER SYSTEM SET ssl = on").await.unwrap();
        admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
        for _ in 0..200 {
            let on: String = self.connect("postgres").await.query_one("SHOW ssl", &[]).await.unwrap().get(0);
            if on == "on" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("ssl did not turn on:\n{}", self.log_tail());
    }
}

impl Drop for PgServer {
    /// Stops the server synchronously (`pg_ctl stop -m immediate`, which waits
    /// until the postmaster and its children have exited), then disarms the
    /// watchdog. The `dir` field's drop removes the directory.
    fn drop(&mut self) {
        self.stop_immediate_blocking();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
    }
}
