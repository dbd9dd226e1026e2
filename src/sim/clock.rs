//! The simulated clock: where in the business day the simulator is, and how fast that day runs.
//!
//! A demo has minutes, not a day, to show the daily shape, so simulated time runs
//! `24h / day_length` times faster than the wall clock, counted from a chosen start. The planner
//! only ever asks "what is the simulated time `elapsed` seconds after start?", never the wall
//! clock, which is what makes runs with the same seed and start reproducible.
//!
//! Also here: the parser for the command line's `--start 09:30` (durations such as
//! `--day-length 10m` are [`crate::duration`]'s).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

/// One real day: `--day-length 24h` follows the wall clock.
pub const REAL_DAY: Duration = Duration::from_secs(86_400);

/// Maps seconds since the simulator started to simulated wall time.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    start: DateTime<Utc>,
    speed: f64,
}

impl SimClock {
    /// A clock that reads `start` at the beginning and then runs one simulated day per
    /// `day_length` of real time. `day_length` must not be zero (options validate it).
    pub fn new(start: DateTime<Utc>, day_length: Duration) -> SimClock {
        SimClock { start, speed: REAL_DAY.as_secs_f64() / day_length.as_secs_f64().max(1e-3) }
    }

    /// Simulated seconds per real second (1 with the real clock, 144 for a 10-minute day).
    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The simulated time `elapsed` real seconds after start.
    pub fn at(&self, elapsed: f64) -> DateTime<Utc> {
        // Microseconds keep a multi-year run (at 144x) comfortably inside i64.
        self.start + TimeDelta::microseconds((elapsed * self.speed * 1e6) as i64)
    }
}

/// Parses the simulated start time: `HH:MM` or `HH:MM:SS` (UTC, on `today`), or a full RFC 3339
/// timestamp such as `2024-03-02T09:30:00Z`.
pub fn parse_start(text: &str, today: NaiveDate) -> Result<DateTime<Utc>, String> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%H:%M", "%H:%M:%S"] {
        if let Ok(time) = NaiveTime::parse_from_str(s, format) {
            return Ok(today.and_time(time).and_utc());
        }
    }
    Err(format!("`{text}` is not a start time; write `HH:MM` (UTC) or an RFC 3339 timestamp"))
}
