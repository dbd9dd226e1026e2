//! The rows of an ordered, paged live query, kept up to date from row deltas.
//!
//! The window holds the first `offset + limit` matching rows in the query's total order (its
//! `ORDER BY`, then primary key), or every matching row when there is no limit. A delta
//! removes its old row if the window holds it and places its new row by binary search; a row
//! that sorts past a full window is not held. When the window loses rows and may not hold
//! every match any more, it is refilled after the transaction by walking the table's ordered
//! index on from its last row (`select_after`) — never by running the query again from the
//! top.

use std::cmp::Ordering;

use crate::change::Row;
use crate::query::{Filter, Query, RowOrder, select_after};
use crate::replica::Table;

#[derive(Clone, Debug)]
pub struct Window {
    query: Query,
    order: RowOrder,
    /// `offset + limit`; `None` without a limit.
    capacity: Option<usize>,
    /// Sorted by `order`.
    rows: Vec<Row>,
    /// `rows` holds every matching row of the table.
    complete: bool,
    /// Rows left the window while rows beyond it may exist: refill before reading.
    short: bool,
    /// The filter reads `now`: a held row may have stopped passing since it was placed.
    time_relative: bool,
}

impl Window {
    /// The window of `query` over one table version, at the instant `now`.
    pub fn fill(table: &Table, query: Query, now: i64) -> Window {
        let order = RowOrder::new(query.order.clone(), table.schema.key.clone());
        let capacity = query.limit.map(|l| l.saturating_add(query.offset));
        let time_relative = query.filter.is_time_relative();
        let mut window =
            Window { query, order, capacity, rows: Vec::new(), complete: false, short: true, time_relative };
        window.refill(table, now);
        window
    }

    pub fn filter(&self) -> &Filter {
        &self.query.filter
    }

    /// The result: the window past `offset`.
    pub fn visible(&self) -> &[Row] {
        self.rows.get(self.query.offset..).unwrap_or(&[])
    }

    /// Applies one row's change at the instant `now`. Returns whether the window's rows changed.
    pub fn apply(&mut self, before: Option<&Row>, after: Option<&Row>, now: i64) -> bool {
        let mut changed = false;
        // Whether the old row is held is a binary search away; the filter only saves it, and
        // for a time-relative filter today's truth does not say whether it was placed.
        if let Some(old) = before.filter(|r| self.time_relative || self.query.filter.matches_at(r, now))
            && let Ok(i) = self.position(old)
        {
            self.rows.remove(i);
            changed = true;
            self.short |= !self.complete;
        }
        if let Some(new) = after.filter(|r| self.query.filter.matches_at(r, now)) {
            match self.position(new) {
                // The same key at the same place (a replayed insert): the newer row wins.
                Ok(i) => {
                    self.rows[i] = new.clone();
                    changed = true;
                }
                Err(i) => {
                    let full = self.capacity.is_some_and(|c| self.rows.len() >= c);
                    // Past the last held row, the row belongs here only if nothing unseen lies
                    // between: the window holds every match and has room. Otherwise it is
                    // beyond a full window, or a refill will reach it.
                    if i < self.rows.len() || (self.complete && !full) {
                        self.rows.insert(i, new.clone());
                        changed = true;
                        if let Some(c) = self.capacity
                            && self.rows.len() > c
                        {
                            self.rows.pop();
                            self.complete = false;
                        }
                    } else if full {
                        // A match past a full window: the window no longer holds every match.
                        self.complete = false;
                    }
                }
            }
        }
        changed
    }

    /// Moves a row (as the table holds it) in or out as its truth at `now` says, when time
    /// alone may have changed it. Returns whether the window's rows changed.
    pub fn retime(&mut self, row: &Row, now: i64) -> bool {
        let held = self.position(row).is_ok();
        match (held, self.query.filter.matches_at(row, now)) {
            (true, false) => self.apply(Some(row), None, now),
            (false, true) => self.apply(None, Some(row), now),
            _ => false,
        }
    }

    /// Whether rows left and the window must be refilled from the table.
    pub fn is_short(&self) -> bool {
        self.short && self.capacity.is_some_and(|c| self.rows.len() < c)
    }

    /// Tops the window up from `table` (the version after the transaction) as it stands at
    /// `now`, walking on from its last row.
    pub fn refill(&mut self, table: &Table, now: i64) {
        self.short = false;
        let room = match self.capacity {
            Some(c) if self.rows.len() >= c => return,
            Some(c) => Some(c - self.rows.len()),
            None if self.complete => return,
            None => None,
        };
        let query =
            Query { filter: self.query.filter.at(now), order: self.query.order.clone(), limit: room, offset: 0 };
        let more = select_after(table, &query, self.rows.last());
        self.complete = room.is_none_or(|room| more.len() < room);
        self.rows.extend(more);
    }

    /// Where `row` is (`Ok`), or would go (`Err`), by the window's order.
    fn position(&self, row: &Row) -> Result<usize, usize> {
        self.rows.binary_search_by(|held| self.order.compare(held, row))
    }

    pub fn order(&self) -> &RowOrder {
        &self.order
    }
}

/// How a result's rows changed: rows that left (by their old row) and rows that entered or
/// changed, with their index in the new result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowsDiff {
    pub removed: Vec<Row>,
    pub upserts: Vec<(usize, Row)>,
}

impl RowsDiff {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.upserts.is_empty()
    }
}

/// The difference between two results of one query, both sorted by `order`: a merge walk,
/// linear in their lengths. A row whose key is in both but whose values changed (a different
/// row) is an upsert, not a removal; a row removed and not upserted again left the result.
pub fn diff(order: &RowOrder, old: &[Row], new: &[Row]) -> RowsDiff {
    let mut out = RowsDiff::default();
    let (mut i, mut j) = (0, 0);
    let mut gone = Vec::new();
    while i < old.len() || j < new.len() {
        let step = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => order.compare(a, b),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match step {
            Ordering::Equal => {
                // Same key and sort values; the row itself may still differ in other columns.
                if !std::sync::Arc::ptr_eq(&old[i], &new[j]) && old[i] != new[j] {
                    out.upserts.push((j, new[j].clone()));
                }
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                gone.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.upserts.push((j, new[j].clone()));
                j += 1;
            }
        }
    }
    // A row that moved (its sort values changed) is upserted at its new index; only keys that
    // are no longer in the result are removals.
    if !gone.is_empty() {
        let key = &order.key;
        let moved: std::collections::HashSet<Vec<&crate::value::Value>> =
            out.upserts.iter().map(|(_, r)| key.iter().map(|&k| &r[k]).collect()).collect();
        out.removed =
            gone.into_iter().filter(|r| !moved.contains(&key.iter().map(|&k| &r[k]).collect::<Vec<_>>())).collect();
    }
    out
}
