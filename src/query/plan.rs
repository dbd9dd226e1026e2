//! Choosing which rows to look at: the table's ordered indexes narrow a scan when the filter
//! pins an indexed column at its top level.
//!
//! Only conjuncts that every passing row must satisfy are used (the filter's top-level `AND`),
//! and every candidate is still checked against the whole filter, so an index only ever saves
//! work — it never changes the answer. Literals whose kind orders differently from the
//! column's values under [`Value`]'s `Ord` (an integer column against a numeric literal) are
//! left to the full scan for the same reason.

use std::ops::Bound;

use super::compare::index_compatible;
use super::filter::{CompareOp, Filter};
use crate::change::{Key, Row};
use crate::replica::Table;
use crate::value::Value;

/// Rows of `table` that may pass `filter`, from the narrowest index range the filter allows.
pub(crate) enum Candidates<'a> {
    /// No row can pass (a top-level FALSE or an empty `in`).
    None,
    /// Every row must be looked at.
    All,
    /// Only the rows with these keys can pass.
    Keys(Vec<&'a Key>),
}

/// A range of one column's values, as an index scan takes it.
pub(crate) type ValueRange = (Bound<Value>, Bound<Value>);

/// One way to read a column's index: value ranges, each scanned in order.
struct Access {
    column: usize,
    ranges: Vec<ValueRange>,
    /// Made of comparisons (one range, possibly empty) rather than an `in` list or `IS NULL`.
    from_comparisons: bool,
}

/// Finds the cheapest index access the filter's top level allows, counting (up to the best so
/// far) how many entries each would read.
pub(crate) fn candidates<'a>(table: &'a Table, filter: &Filter) -> Candidates<'a> {
    let conjuncts = filter.conjuncts();
    if conjuncts.contains(&Filter::False) {
        return Candidates::None;
    }
    let accesses = accesses(table, conjuncts);
    let mut best: Option<(usize, &Access)> = None;
    for access in &accesses {
        let limit = best.map_or(table.len(), |(n, _)| n);
        let mut n = 0;
        for range in &access.ranges {
            match table.index_range(access.column, range.clone()) {
                Some(keys) => n += keys.take(limit.saturating_sub(n) + 1).count(),
                None => n = usize::MAX,
            }
            if n > limit {
                break;
            }
        }
        // An access that reads every row is worse than a plain scan.
        if n < limit {
            best = Some((n, access));
        }
    }
    match best {
        Some((0, _)) => Candidates::None,
        Some((_, access)) => {
            let mut keys = Vec::new();
            for range in &access.ranges {
                if let Some(found) = table.index_range(access.column, range.clone()) {
                    keys.extend(found);
                }
            }
            Candidates::Keys(keys)
        }
        None => Candidates::All,
    }
}

/// The index accesses the top-level conjuncts allow: ranges on one column are intersected,
/// an `in` list becomes one point range per element.
fn accesses(table: &Table, conjuncts: &[Filter]) -> Vec<Access> {
    let indexed = |column: usize| table.schema.indexed.contains(&column);
    let fits = |column: usize, v: &Value| table.schema.columns.get(column).is_some_and(|c| index_compatible(&c.ty, v));
    // Per column: the tightest lower and upper bounds seen.
    let mut ranges: Vec<(usize, Bound<Value>, Bound<Value>)> = Vec::new();
    let mut lists: Vec<Access> = Vec::new();
    for conjunct in conjuncts {
        match conjunct {
            Filter::Compare { column, op, value } if indexed(*column) && fits(*column, value) => {
                // NULLs sort first in the index: a bound-less lower end starts after them.
                let above_nulls = Bound::Excluded(Value::Null);
                let (lower, upper) = match op {
                    CompareOp::Eq => (Bound::Included(value.clone()), Bound::Included(value.clone())),
                    CompareOp::Gt => (Bound::Excluded(value.clone()), Bound::Unbounded),
                    CompareOp::Gte => (Bound::Included(value.clone()), Bound::Unbounded),
                    CompareOp::Lt => (above_nulls, Bound::Excluded(value.clone())),
                    CompareOp::Lte => (above_nulls, Bound::Included(value.clone())),
                    CompareOp::Neq => continue,
                };
                match ranges.iter_mut().find(|(c, _, _)| c == column) {
                    Some((_, lo, hi)) => {
                        *lo = tighter_lower(lo.clone(), lower);
                        *hi = tighter_upper(hi.clone(), upper);
                    }
                    None => ranges.push((*column, lower, upper)),
                }
            }
            Filter::In { column, values, negated: false } if indexed(*column) => {
                // NULL elements match nothing; the others must all be usable.
                let mut points: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
                if points.iter().all(|v| fits(*column, v)) {
                    points.sort();
                    points.dedup();
                    let ranges = points.into_iter().map(|v| (Bound::Included(v.clone()), Bound::Included(v.clone())));
                    lists.push(Access { column: *column, ranges: ranges.collect(), from_comparisons: false });
                }
            }
            Filter::IsNull { column, is_null: true } if indexed(*column) => lists.push(Access {
                column: *column,
                ranges: vec![(Bound::Included(Value::Null), Bound::Included(Value::Null))],
                from_comparisons: false,
            }),
            _ => {}
        }
    }
    let mut out: Vec<Access> = ranges
        .into_iter()
        .map(|(column, lo, hi)| Access {
            column,
            ranges: if empty(&lo, &hi) { vec![] } else { vec![(lo, hi)] },
            from_comparisons: true,
        })
        .collect();
    out.extend(lists);
    out
}

pub(crate) fn tighter_lower(a: Bound<Value>, b: Bound<Value>) -> Bound<Value> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x > y || (x == y && matches!(a, Bound::Excluded(_))) { a } else { b }
        }
    }
}

pub(crate) fn tighter_upper(a: Bound<Value>, b: Bound<Value>) -> Bound<Value> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x < y || (x == y && matches!(a, Bound::Excluded(_))) { a } else { b }
        }
    }
}

/// Whether no value lies between the bounds (such ranges must not reach the index, whose
/// range scan expects start ≤ end).
pub(crate) fn empty(lo: &Bound<Value>, hi: &Bound<Value>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

/// The values of `column` a passing row can have, from the filter's top-level comparisons on
/// it: `Some(None)` when they contradict each other, `None` when there are none. Any such
/// comparison also rules out NULL.
pub(crate) fn column_range(table: &Table, filter: &Filter, column: usize) -> Option<Option<ValueRange>> {
    accesses(table, filter.conjuncts())
        .into_iter()
        .find(|a| a.column == column && a.from_comparisons)
        .map(|a| a.ranges.into_iter().next())
}

/// Every row of `table` that passes `filter`, read through an index where one helps.
pub fn matching_rows<'a>(table: &'a Table, filter: &'a Filter) -> Box<dyn Iterator<Item = &'a Row> + 'a> {
    candidates(table, filter).rows(table, filter)
}

impl<'a> Candidates<'a> {
    /// The candidate rows that pass `filter`.
    pub(crate) fn rows(self, table: &'a Table, filter: &'a Filter) -> Box<dyn Iterator<Item = &'a Row> + 'a> {
        match self {
            Candidates::None => Box::new(std::iter::empty()),
            Candidates::All => Box::new(table.rows().map(|(_, row)| row).filter(move |row| filter.matches(row))),
            Candidates::Keys(keys) => {
                Box::new(keys.into_iter().filter_map(|k| table.get(k)).filter(move |row| filter.matches(row)))
            }
        }
    }
}
