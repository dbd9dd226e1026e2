//! When each row of a time-relative filter (a live query's, a KPI's, a row alert rule's) next
//! needs a look: an index of rows by the
//! instant their filter's truth can next change by time alone ([`Filter::next_change`]).
//!
//! `{ createdAt: { lt: { ago: "PT10M" } } }` admits a row ten minutes after it was created,
//! with no write to announce it. Rescanning the table on a tick would cost every row every
//! tick and still be late; instead each row is filed under its next change instant when it is
//! evaluated (built with the query, updated with each delta), and a time step takes exactly
//! the rows that are due. Rows whose truth can no longer change are not held at all.

use std::collections::BTreeSet;

use foldhash::HashMap;

use crate::change::{Key, Row};
use crate::query::Filter;

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    due: BTreeSet<(i64, Key)>,
    rows: HashMap<Key, Filed>,
}

/// A row's entry: when it is due, and whether it passed the filter when it was filed (what an
/// aggregate counted it as).
#[derive(Clone, Copy, Debug)]
struct Filed {
    at: i64,
    matched: bool,
}

impl Timeline {
    /// The timeline of `rows` under `filter` at `now`.
    pub fn build<'a>(rows: impl Iterator<Item = (&'a Key, &'a Row)>, filter: &Filter, now: i64) -> Timeline {
        let mut timeline = Timeline::default();
        for (key, row) in rows {
            timeline.file(key, Some(row), filter, now);
        }
        timeline
    }

    /// Files the row now under `key` (`None`: it is gone) at its next change after `now`.
    /// Returns whether the row passed when it was last filed, if it was filed: for a row that
    /// was not, the truth could no longer change, so evaluating its old version now is exact.
    pub fn file(&mut self, key: &Key, row: Option<&Row>, filter: &Filter, now: i64) -> Option<bool> {
        let previous = self.rows.remove(key);
        if let Some(old) = previous {
            self.due.remove(&(old.at, key.clone()));
        }
        if let Some(row) = row
            && let Some(at) = filter.next_change(row, now)
        {
            self.due.insert((at, key.clone()));
            self.rows.insert(key.clone(), Filed { at, matched: filter.matches_at(row, now) });
        }
        previous.map(|f| f.matched)
    }

    /// Takes the rows due at or before `now`, each with whether it passed when filed. They are
    /// no longer filed: the caller files each again after looking at it.
    pub fn take_due(&mut self, now: i64) -> Vec<(Key, bool)> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.due.first()
            && *at <= now
        {
            let (_, key) = self.due.pop_first().expect("just seen");
            let matched = self.rows.remove(&key).is_some_and(|f| f.matched);
            out.push((key, matched));
        }
        out
    }

    /// Like [`Timeline::take_due`], with the instant each row came due.
    pub fn take_due_at(&mut self, now: i64) -> Vec<(i64, Key, bool)> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.due.first()
            && *at <= now
        {
            let (at, key) = self.due.pop_first().expect("just seen");
            let matched = self.rows.remove(&key).is_some_and(|f| f.matched);
            out.push((at, key, matched));
        }
        out
    }

    /// The earliest instant a row is due, if any.
    pub fn next_due(&self) -> Option<i64> {
        self.due.first().map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
