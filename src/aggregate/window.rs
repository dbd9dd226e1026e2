//! Aggregates over a time window that slides as time passes: "orders in the last 10 minutes",
//! "revenue today".
//!
//! A row counts while its window column is at or after the window's cutoff: `now - span` for
//! [`Span::Last`], the start of the current calendar day in a time zone for [`Span::Today`].
//! Rows are added and removed through the one [`Aggregate`], so every function and input works
//! in a window too. Time passing removes rows without any change to them, so the counted rows
//! are also kept in an expiry index ordered by their timestamp: [`WindowedAggregate::advance`]
//! pops exactly the rows that fell out, without scanning the table, and
//! [`WindowedAggregate::next_expiry`] tells the caller when that will next happen, so it can
//! sleep until then instead of polling.
//!
//! Rows with a timestamp in the future are counted (they are at or after the cutoff) and stay
//! until the window passes them. Rows whose window column is NULL are never in the window. A
//! `timestamp` without zone is read as UTC, like every `now` here. Time only moves forward: a
//! `now` before one already seen does not bring expired rows back (they are no longer held).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Days, LocalResult, NaiveDate, Offset, TimeZone};

use super::{Aggregate, AggregateError, AggregateSpec, GroupResult};
use crate::change::Row;
use crate::query::type_label;
use crate::registry::{ColumnType, TableSchema};
use crate::value::Value;

/// How far back a window reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Span {
    /// The last `micros` microseconds: rows with `column >= now - micros`.
    Last { micros: i64 },
    /// The current calendar day in `tz`: rows with `column >= ` today's start there (DST-aware:
    /// a day may be 23 or 25 hours long, and may start at 01:00 where midnight was skipped).
    Today { tz: chrono_tz::Tz },
}

/// A time window on a timestamp(tz) column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    pub column: usize,
    pub span: Span,
}

const MICROS_PER_SECOND: i64 = 1_000_000;

impl Span {
    /// The earliest timestamp counted at `now`.
    pub fn cutoff(&self, now: i64) -> i64 {
        match self {
            Span::Last { micros } => now.saturating_sub(*micros),
            Span::Today { tz } => day_start_containing(*tz, now, 0).unwrap_or(i64::MIN),
        }
    }

    /// The first instant after `now` at which the cutoff may be later than at `now`: the
    /// next day's start for [`Span::Today`] (its cutoff stands all day, and finding a day's
    /// start in a zone is the costly part of moving a window), the next microsecond otherwise.
    fn cutoff_stands_until(&self, now: i64) -> i64 {
        match self {
            Span::Last { .. } => now.saturating_add(1),
            Span::Today { tz } => day_start_containing(*tz, now, 1).unwrap_or(i64::MAX),
        }
    }

    /// The first `now` at which a row stamped `t` is no longer counted; `None` for never.
    fn expiry(&self, t: i64) -> Option<i64> {
        if t == i64::MAX {
            return None;
        }
        match self {
            Span::Last { micros } => t.checked_add(*micros)?.checked_add(1),
            Span::Today { tz } => day_start_containing(*tz, t, 1),
        }
    }
}

/// The first instant of the calendar day `days_later` days after the one containing `micros`,
/// in `tz`, as microseconds since the epoch.
fn day_start_containing(tz: chrono_tz::Tz, micros: i64, days_later: u64) -> Option<i64> {
    let instant = DateTime::from_timestamp_micros(micros)?;
    let date = instant.with_timezone(&tz).date_naive().checked_add_days(Days::new(days_later))?;
    day_start(tz, date)
}

/// The first instant of `date` in `tz`.
pub(crate) fn day_start(tz: chrono_tz::Tz, date: NaiveDate) -> Option<i64> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    let start = match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.timestamp_micros(),
        // Clocks went back over midnight: the day starts at its first midnight.
        LocalResult::Ambiguous(first, _) => first.timestamp_micros(),
        // Clocks jumped over midnight: the day starts at the jump, which is midnight in the
        // offset before it (as PostgreSQL reads a local time in a gap).
        LocalResult::None => {
            let before = tz.offset_from_utc_datetime(&(midnight - chrono::Duration::days(1))).fix();
            (midnight.and_utc().timestamp() - i64::from(before.local_minus_utc())).checked_mul(MICROS_PER_SECOND)?
        }
    };
    Some(start)
}

/// An [`Aggregate`] over the rows of a table whose window column is in a [`TimeWindow`].
#[derive(Clone, Debug)]
pub struct WindowedAggregate {
    aggregate: Aggregate,
    window: TimeWindow,
    /// Rows stamped before this are not counted; it only moves forward.
    cutoff: i64,
    /// Until when `cutoff` stands: moving the window before then changes nothing.
    cutoff_until: i64,
    /// The counted rows by their window column's value, oldest first.
    rows: BTreeMap<i64, Vec<Row>>,
}

/// Whether two rows are the same row version: the same values, spelled the same, so that
/// removing one takes out exactly what adding it put in.
fn same_row(a: &Row, b: &[Value]) -> bool {
    std::ptr::eq(a.as_ref(), b) || (a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_spelling(y)))
}

impl WindowedAggregate {
    /// Checks the spec as [`Aggregate::new`] does, and that the window column is a timestamp
    /// or timestamptz.
    pub fn new(
        spec: AggregateSpec,
        schema: &TableSchema,
        window: TimeWindow,
        now_micros: i64,
    ) -> Result<WindowedAggregate, AggregateError> {
        let column = schema.columns.get(window.column).ok_or_else(|| AggregateError::NoSuchColumn {
            table: schema.spec.name.to_string(),
            column: window.column,
        })?;
        if !matches!(column.ty, ColumnType::Timestamp | ColumnType::TimestampTz) {
            return Err(AggregateError::NotWindowable { column: column.name.to_string(), ty: type_label(&column.ty) });
        }
        let aggregate = Aggregate::new(spec, schema)?;
        Ok(WindowedAggregate {
            aggregate,
            window,
            cutoff: window.span.cutoff(now_micros),
            cutoff_until: window.span.cutoff_stands_until(now_micros),
            rows: BTreeMap::new(),
        })
    }

    /// The aggregate of the rows in the window (as of the last `advance`).
    pub fn aggregate(&self) -> &Aggregate {
        &self.aggregate
    }

    pub fn window(&self) -> &TimeWindow {
        &self.window
    }

    fn stamp(&self, row: &[Value]) -> Option<i64> {
        match row.get(self.window.column)? {
            Value::Timestamp(t) | Value::TimestampTz(t) => Some(*t),
            _ => None,
        }
    }

    /// Applies one row change at `now_micros`: `before` leaves if it was counted, `after`
    /// enters if it is in the window. Expires what fell out first. Returns whether the counted
    /// rows changed.
    pub fn apply(&mut self, before: Option<&Row>, after: Option<&Row>, now_micros: i64) -> bool {
        let mut changed = self.advance(now_micros);
        // An update that leaves the row in the window at the same instant, in the same group
        // with the same measure inputs: only the version held for its removal changes.
        if let (Some(b), Some(a)) = (before, after)
            && let (Some(t), Some(ta)) = (self.stamp(b), self.stamp(a))
            && t == ta
            && t >= self.cutoff
            && self.aggregate.unmoved_by(b, a)
            && let Some(held) = self.rows.get_mut(&t)
            && let Some(i) = held.iter().position(|r| same_row(r, b))
        {
            held[i] = Arc::clone(a);
            return changed;
        }
        if let Some(row) = before
            && let Some(t) = self.stamp(row)
            && let Some(held) = self.rows.get_mut(&t)
            && let Some(i) = held.iter().position(|r| same_row(r, row))
        {
            let gone = held.swap_remove(i);
            if held.is_empty() {
                self.rows.remove(&t);
            }
            self.aggregate.remove(&gone);
            changed = true;
        }
        if let Some(row) = after
            && let Some(t) = self.stamp(row)
            && t >= self.cutoff
        {
            self.aggregate.add(row);
            self.rows.entry(t).or_default().push(Arc::clone(row));
            changed = true;
        }
        changed
    }

    /// Moves the window to `now_micros`, removing the rows that fell out of it. Returns whether
    /// any did (measures of ages change with time regardless; read them with
    /// [`WindowedAggregate::groups_at`]).
    pub fn advance(&mut self, now_micros: i64) -> bool {
        if now_micros < self.cutoff_until {
            return false;
        }
        self.cutoff = self.cutoff.max(self.window.span.cutoff(now_micros));
        self.cutoff_until = self.window.span.cutoff_stands_until(now_micros);
        let mut changed = false;
        while let Some(entry) = self.rows.first_entry() {
            if *entry.key() >= self.cutoff {
                break;
            }
            for row in entry.remove() {
                self.aggregate.remove(&row);
            }
            changed = true;
        }
        changed
    }

    /// The first `now` at which [`WindowedAggregate::advance`] would remove a row; `None` when
    /// no counted row ever leaves (none is counted, or only infinite timestamps are). For
    /// [`Span::Today`] that is the next start of a day in the zone after the oldest row's.
    pub fn next_expiry(&self) -> Option<i64> {
        let (&oldest, _) = self.rows.first_key_value()?;
        self.window.span.expiry(oldest)
    }

    /// Rows currently counted.
    pub fn rows(&self) -> u64 {
        self.aggregate.rows()
    }

    /// Forgets every row (a table reset).
    pub fn clear(&mut self) {
        self.aggregate.clear();
        self.rows.clear();
    }

    /// The groups of the counted rows, ages read at `now_micros`. Call
    /// [`WindowedAggregate::advance`] with the same `now` first, or rows that fell out since
    /// the last change are still counted.
    pub fn groups_at(&self, now_micros: i64) -> Vec<GroupResult> {
        self.aggregate.groups_at(now_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).expect("a timestamp").timestamp_micros()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    #[test]
    fn days_start_at_local_midnight_across_dst() {
        use chrono_tz::{America, Europe};
        // Berlin springs forward at 02:00 and falls back at 03:00: midnight always exists.
        assert_eq!(day_start(Europe::Berlin, date(2024, 3, 31)), Some(utc("2024-03-30T23:00:00Z")));
        assert_eq!(day_start(Europe::Berlin, date(2024, 4, 1)), Some(utc("2024-03-31T22:00:00Z")));
        assert_eq!(day_start(Europe::Berlin, date(2024, 10, 28)), Some(utc("2024-10-27T23:00:00Z")));
        // São Paulo skipped midnight on 2018-11-04: the day began at 01:00 -02, 03:00 UTC.
        assert_eq!(day_start(America::Sao_Paulo, date(2018, 11, 4)), Some(utc("2018-11-04T03:00:00Z")));
        // Havana fell back from 01:00 to 00:00 on 2023-11-05: the day began at the first 00:00.
        assert_eq!(day_start(America::Havana, date(2023, 11, 5)), Some(utc("2023-11-05T04:00:00Z")));
        let today = Span::Today { tz: Europe::Berlin };
        // 23:30 UTC on the 30th is already the 31st in Berlin.
        assert_eq!(today.cutoff(utc("2024-03-30T23:30:00Z")), utc("2024-03-30T23:00:00Z"));
        // The 31st has 23 hours.
        assert_eq!(today.expiry(utc("2024-03-31T12:00:00Z")), Some(utc("2024-03-31T22:00:00Z")));
        let last = Span::Last { micros: 10 };
        assert_eq!(last.cutoff(100), 90);
        assert_eq!(last.expiry(90), Some(101));
        assert_eq!(last.expiry(i64::MAX), None);
    }
}
