//! The simulated clock: where in the business day the simulator is, and how fast that day runs.
//!
//! A demo has minutes, not a day, to show the daily shape, so simulated time runs
//! `24h / day_length` times faster than the wall clock, counted from a chosen start. The planner
//! only ever asks "what is the simulated time `elapsed` seconds after start?", never the wall
//! clock, which is what makes runs with the same seed and start reproducible.
//!
//! Also here: the small parsers for the command line's `--day-length 10m` and `--start 09:30`
//! (a duration crate would be a dependency for three units).

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

/// Parses a duration such as `90s`, `10m`, `1h30m`, `1.5h`, `24h`, `2d` or `500ms`. A bare number
/// is refused, because "10" could mean seconds or minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. `90s`, `10m` or `24h`".into());
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let value: f64 =
            number.parse().map_err(|_| format!("`{text}` is not a duration; write e.g. `90s`, `10m` or `24h`"))?;
        let seconds = match unit.trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "" => return Err(format!("`{text}` needs a unit: ms, s, m, h or d (e.g. `{number}s`)")),
            other => return Err(format!("unknown unit `{other}` in `{text}`; use ms, s, m, h or d")),
        };
        total += value * seconds;
        rest = after;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_secs_f64(total))
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
