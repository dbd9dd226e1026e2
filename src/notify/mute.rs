//! Mute timings, after Grafana's: named weekly windows in a time zone (nights, weekends, a
//! maintenance slot) during which a route sends nothing. A notification that falls in one is
//! recorded as `muted`, naming the timing, and never sent; reminders are not written while a
//! route is muted.
//!
//! ```json
//! { "name": "weekends", "timeZone": "Europe/Berlin",
//!   "intervals": [{ "weekdays": ["saturday:sunday"] },
//!                 { "weekdays": ["monday:friday"], "times": [{ "start": "22:00", "end": "24:00" }] }] }
//! ```
//!
//! An interval holds when the local weekday is in one of its `weekdays` ranges (none: every
//! day) and the local time in one of its `times` ranges (none: all day); a timing holds when
//! one of its intervals does. Times are `HH:MM`, start inclusive, end exclusive, `24:00` the
//! end of the day; a window across midnight is two intervals, as in Grafana.

use chrono::{Datelike, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteTiming {
    pub name: String,
    /// An IANA zone (`Europe/Berlin`); UTC when left out.
    #[serde(default)]
    pub time_zone: Zone,
    pub intervals: Vec<Interval>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interval {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<Days>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<Times>,
}

/// `[start, end)` in minutes of the local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Times {
    pub start: Clock,
    pub end: Clock,
}

/// A time of day, `HH:MM`, `00:00` to `24:00`, as minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Clock(pub u16);

/// A weekday or a range of them (`monday`, `monday:friday`; `friday:monday` wraps the week),
/// as Monday-based day numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Days(pub u8, pub u8);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone(pub chrono_tz::Tz);

impl Default for Zone {
    fn default() -> Self {
        Zone(chrono_tz::UTC)
    }
}

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

impl TryFrom<String> for Clock {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a time of day as HH:MM (00:00 to 24:00)");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) || text.len() != 5 {
            return Err(bad());
        }
        Ok(Clock(h * 60 + m))
    }
}

impl From<Clock> for String {
    fn from(c: Clock) -> String {
        format!("{:02}:{:02}", c.0 / 60, c.0 % 60)
    }
}

impl TryFrom<String> for Days {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let day = |d: &str| {
            WEEKDAYS
                .iter()
                .position(|w| *w == d.trim().to_lowercase())
                .map(|p| p as u8)
                .ok_or_else(|| format!("`{d}` is not a weekday (monday … sunday; a range is `monday:friday`)"))
        };
        match text.split_once(':') {
            Some((a, b)) => Ok(Days(day(a)?, day(b)?)),
            None => day(&text).map(|d| Days(d, d)),
        }
    }
}

impl From<Days> for String {
    fn from(d: Days) -> String {
        let (a, b) = (WEEKDAYS[d.0 as usize], WEEKDAYS[d.1 as usize]);
        if d.0 == d.1 { a.to_string() } else { format!("{a}:{b}") }
    }
}

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
            .map(Zone)
            .map_err(|_| format!("`{text}` is not an IANA time zone such as `Europe/Berlin` or `UTC`"))
    }
}

impl From<Zone> for String {
    fn from(z: Zone) -> String {
        z.0.name().to_string()
    }
}

impl Days {
    fn holds(self, day: u8) -> bool {
        if self.0 <= self.1 { (self.0..=self.1).contains(&day) } else { day >= self.0 || day <= self.1 }
    }
}

impl MuteTiming {
    /// Whether `at` (µs since the epoch) falls in one of its intervals, in its time zone.
    pub fn holds(&self, at: i64) -> bool {
        let Some(utc) = chrono::DateTime::from_timestamp_micros(at) else { return false };
        let local = self.time_zone.0.from_utc_datetime(&utc.naive_utc());
        let day = local.weekday().num_days_from_monday() as u8;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.intervals.iter().any(|i| {
            (i.weekdays.is_empty() || i.weekdays.iter().any(|d| d.holds(day)))
                && (i.times.is_empty() || i.times.iter().any(|t| t.start.0 <= minute && minute < t.end.0))
        })
    }

    /// What serde cannot say: a name, at least one interval, ranges that end after they start.
    pub fn check(&self, at: &str) -> Result<(), crate::kpi::DefinitionError> {
        use crate::kpi::DefinitionError;
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(DefinitionError::new(format!("{at}.name"), "between 1 and 100 characters"));
        }
        if self.intervals.is_empty() {
            return Err(DefinitionError::new(format!("{at}.intervals"), "give at least one interval"));
        }
        for (i, interval) in self.intervals.iter().enumerate() {
            for (j, t) in interval.times.iter().enumerate() {
                if t.end <= t.start {
                    return Err(DefinitionError::new(
                        format!("{at}.intervals[{i}].times[{j}]"),
                        "must end after it starts (a window across midnight is two intervals, one ending at 24:00)",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(json: serde_json::Value) -> MuteTiming {
        serde_json::from_value(json).unwrap()
    }

    fn at(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_micros()
    }

    #[test]
    fn nights_and_weekends_hold_in_their_own_time_zone() {
        let quiet = timing(serde_json::json!({
            "name": "quiet", "timeZone": "Europe/Berlin",
            "intervals": [{ "weekdays": ["saturday:sunday"] },
                          { "weekdays": ["monday:friday"], "times": [{ "start": "22:00", "end": "24:00" },
                                                                     { "start": "00:00", "end": "06:30" }] }]
        }));
        // 2026-12-04 is a Friday; Berlin is UTC+1 in December.
        assert!(quiet.holds(at("2026-12-04T21:00:00Z")), "22:00 Friday in Berlin");
        assert!(!quiet.holds(at("2026-12-04T20:59:00Z")), "21:59 in Berlin");
        assert!(quiet.holds(at("2026-12-05T12:00:00Z")), "Saturday");
        assert!(quiet.holds(at("2026-12-07T05:29:00Z")), "06:29 Monday");
        assert!(!quiet.holds(at("2026-12-07T05:30:00Z")), "06:30 Monday: the end is exclusive");
        // Summer time moves the window in UTC, not in Berlin.
        assert!(quiet.holds(at("2026-07-01T20:00:00Z")), "22:00 on a Wednesday in July (UTC+2)");
        assert!(!quiet.holds(at("2026-07-01T19:59:00Z")));
    }

    #[test]
    fn a_weekday_range_may_wrap_the_week_and_no_weekdays_means_every_day() {
        let long_weekend = timing(serde_json::json!({ "name": "w", "intervals": [{ "weekdays": ["friday:monday"] }] }));
        assert!(long_weekend.holds(at("2026-12-07T10:00:00Z")), "Monday");
        assert!(!long_weekend.holds(at("2026-12-08T10:00:00Z")), "Tuesday");
        let lunch = timing(
            serde_json::json!({ "name": "l", "intervals": [{ "times": [{ "start": "12:00", "end": "13:00" }] }] }),
        );
        assert!(lunch.holds(at("2026-12-08T12:30:00Z")));
        assert!(!lunch.holds(at("2026-12-08T13:00:00Z")));
    }

    #[test]
    fn bad_timings_are_refused_with_the_reason() {
        let err = |json: serde_json::Value| serde_json::from_value::<MuteTiming>(json).unwrap_err().to_string();
        assert!(err(serde_json::json!({ "name": "x", "timeZone": "Mars/Olympus", "intervals": [] })).contains("IANA"));
        assert!(err(serde_json::json!({ "name": "x", "intervals": [{ "weekdays": ["funday"] }] })).contains("weekday"));
        assert!(
            err(serde_json::json!({ "name": "x", "intervals": [{ "times": [{ "start": "25:00", "end": "26:00" }] }] }))
                .contains("HH:MM")
        );
        let backwards = timing(
            serde_json::json!({ "name": "x", "intervals": [{ "times": [{ "start": "22:00", "end": "06:00" }] }] }),
        );
        assert_eq!(backwards.check("muteTimings[0]").unwrap_err().field, "muteTimings[0].intervals[0].times[0]");
        let empty = timing(serde_json::json!({ "name": "x", "intervals": [] }));
        assert_eq!(empty.check("m").unwrap_err().field, "m.intervals");
        let round = timing(serde_json::json!({ "name": "x", "timeZone": "Asia/Tokyo",
            "intervals": [{ "weekdays": ["monday:friday", "sunday"], "times": [{ "start": "09:05", "end": "24:00" }] }] }));
        assert_eq!(serde_json::from_value::<MuteTiming>(serde_json::to_value(&round).unwrap()).unwrap(), round);
    }
}
