//! A private Redis for a test: the machine's `redis-server` on a free port, in its own
//! directory, durable as the README asks (`appendonly yes`, `appendfsync always`), so that it
//! can be killed and started again with what it acknowledged; stopped when dropped (and by a
//! watchdog if the test process is killed first).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Watchdog, free_port, private_tempdir};

pub struct RedisServer {
    child: Child,
    port: u16,
    watchdog: Option<Watchdog>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one and returns once it accepts connections (its own log says so).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a replica of `primary` (its own append-only file too).
    #[allow(dead_code)]
    pub fn replica_of(primary: &RedisServer) -> RedisServer {
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()])
    }

    fn start_with(args: &[&str]) -> RedisServer {
        for _ in 0..5 {
            let dir = private_tempdir("opslive-redis-");
            let port = free_port();
            if let Some((child, watchdog)) = spawn(dir.path(), port, args) {
                return RedisServer { child, port, watchdog: Some(watchdog), _dir: dir };
            }
            // The port was taken between choosing it and binding it: try another.
        }
        panic!("redis-server did not start");
    }

    /// Kills it (SIGKILL: a crash) and returns once it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = self.watchdog.take() {
            w.disarm();
        }
    }

    /// Starts it again on the same port, from its append-only file.
    pub fn start_again(&mut self) {
        for _ in 0..50 {
            if let Some((child, watchdog)) = spawn(self._dir.path(), self.port, &[]) {
                self.child = child;
                self.watchdog = Some(watchdog);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// Its process id (to pause it with SIGSTOP).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// Starts `redis-server` in `dir` on `port`; `None` if it does not get ready (the port is taken).
fn spawn(dir: &std::path::Path, port: u16, args: &[&str]) -> Option<(Child, Watchdog)> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(args)
        .args(["--dir", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's redis-server package) must be installed");
    let stop = {
        let mut c = Command::new("kill");
        c.args(["-9", &child.id().to_string()]);
        c
    };
    let watchdog = Watchdog::spawn(dir, &stop);
    // Its log is read to the end, so the server never blocks on a full pipe.
    let (said, ready) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept connections") {
                let _ = said.send(());
            }
        }
    });
    if ready.recv_timeout(Duration::from_secs(20)).is_ok() {
        return Some((child, watchdog));
    }
    let _ = child.kill();
    let _ = child.wait();
    watchdog.disarm();
    None
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = self.watchdog.take() {
            w.disarm();
        }
    }
}
