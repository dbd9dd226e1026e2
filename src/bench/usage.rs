//! CPU time and memory of a process, read from Linux's `/proc`.
//!
//! CPU is the process's user + system time (`/proc/<pid>/stat`, all threads) over the measured
//! window, as a share of one core: 150 % means one and a half cores busy. Memory is the resident
//! set (`VmRSS` of `/proc/<pid>/status`), sampled while the run goes so its peak is seen, next to
//! the kernel's own high-water mark (`VmHWM`, which also covers the start-up snapshot).

use std::time::{Duration, Instant};

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    pub at: Instant,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// Reads the CPU time of `pid` (`None` for this process).
pub fn cpu(pid: Option<u32>) -> std::io::Result<CpuReading> {
    let text = std::fs::read_to_string(proc_path(pid, "stat"))?;
    let ticks = parse_stat_ticks(&text)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "an unexpected /proc/<pid>/stat"))?;
    Ok(CpuReading { at: Instant::now(), ticks })
}

/// The share of one core used between two readings, in percent.
pub fn cpu_percent(from: CpuReading, to: CpuReading) -> f64 {
    let secs = to.at.saturating_duration_since(from.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    to.ticks.saturating_sub(from.ticks) as f64 / clock_ticks_per_second() as f64 / secs * 100.0
}

/// Resident and peak resident memory of `pid`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

pub fn memory(pid: Option<u32>) -> std::io::Result<Memory> {
    let text = std::fs::read_to_string(proc_path(pid, "status"))?;
    Ok(parse_status_memory(&text))
}

/// Samples `pid`'s resident memory every `every` until told to stop; the highest seen.
pub struct RssSampler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: Option<u32>, every: Duration) -> RssSampler {
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = s.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match memory(pid) {
                    Ok(m) => peak = peak.max(m.rss),
                    Err(_) => break,
                }
            }
            if let Ok(m) = memory(pid) {
                peak = peak.max(m.rss);
            }
            peak
        });
        RssSampler { stop, task }
    }

    /// Stops sampling; the highest resident size seen.
    pub async fn finish(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

/// The machine's 1-minute load average: other work on the same cores shows in every figure.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// utime + stime: fields 14 and 15 of `stat`. The command name (field 2) is in parentheses and
/// may hold spaces and parentheses itself, so the fields are counted after its last `)`.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field k is at index k - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_memory(text: &str) -> Memory {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    Memory { rss: kib("VmRSS:"), hwm: kib("VmHWM:") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let stat = "4242 (opslive (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_memory() {
        let status = "Name:\topslive\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n";
        assert_eq!(parse_status_memory(status), Memory { rss: 100 * 1024 * 1024, hwm: 200 * 1024 * 1024 });
    }

    #[test]
    fn this_process_can_be_read() {
        let a = cpu(None).unwrap();
        let mut x = 0u64;
        while a.at.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = cpu(None).unwrap();
        assert!(b.ticks >= a.ticks);
        assert!(
            cpu_percent(a, b) <= 100.0 * std::thread::available_parallelism().map_or(64, |n| n.get()) as f64 + 50.0
        );
        assert!(memory(None).unwrap().rss > 0);
    }
}
