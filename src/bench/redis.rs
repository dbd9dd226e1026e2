//! The Redis a cluster bench run starts for its instances: the machine's `redis-server` on a
//! free loopback port, in the run's directory, durable as the README asks of a cluster
//! (`appendonly yes`, `appendfsync always`: the leader's publishes wait for the fsync, which is
//! part of what the run measures). Killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

pub struct LocalRedis {
    child: Child,
    pub url: String,
}

impl LocalRedis {
    pub fn start(dir: &Path) -> Result<LocalRedis, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::Io(format!("{}: {e}", dir.display())))?;
        let port = crate::demo::free_or_any(0);
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                BenchError::Server(format!("cannot start redis-server (Debian's redis-server package): {e}"))
            })?;
        let redis = LocalRedis { child, url: format!("redis://127.0.0.1:{port}/") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::Server(format!("redis-server did not listen on port {port}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(redis)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
