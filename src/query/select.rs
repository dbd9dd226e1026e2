//! Answering a query over one table version: filter, order, page.
//!
//! Two strategies, one answer. When the first `ORDER BY` column has an ordered index and a page
//! is asked for, rows are read in index order and the walk stops as soon as the page is full
//! (a "latest 20 orders" query touches about 20 rows, not the whole table). Otherwise the
//! candidate rows (narrowed by an index when the filter allows it, see [`super::plan`]) are
//! filtered and only the rows up to the end of the page are fully sorted.

use std::cmp::Ordering;
use std::ops::Bound;

use super::filter::Filter;
use super::order::{OrderBy, RowOrder};
use super::plan::{Candidates, candidates, column_range, empty, tighter_lower, tighter_upper};
use crate::change::{Key, Row};
use crate::replica::Table;
use crate::value::Value;

/// A query over one table: rows passing `filter`, in `order` (then by primary key), skipping
/// `offset` rows and returning at most `limit`.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub filter: Filter,
    pub order: Vec<OrderBy>,
    pub limit: Option<usize>,
    pub offset: usize,
}

impl Query {
    /// Every row, in primary-key order.
    pub fn all() -> Query {
        Query { filter: Filter::True, order: Vec::new(), limit: None, offset: 0 }
    }
}

/// Runs a (validated) query against one version of a table.
///
/// The rows are shared with the replica (`Arc`), not copied. The caller checks the table's
/// state first: a table that is not ready must not be answered from.
pub fn select(table: &Table, query: &Query) -> Vec<Row> {
    select_after(table, query, None)
}

/// Like [`select`], for the rows that come strictly after `after` in the query's order: how a
/// live query refills a window that lost rows, walking on from its last row instead of
/// starting over.
pub fn select_after(table: &Table, query: &Query, after: Option<&Row>) -> Vec<Row> {
    let order = RowOrder::new(query.order.clone(), table.schema.key.clone());
    let wanted = query.limit.map(|limit| query.offset.saturating_add(limit));
    if wanted == Some(0) {
        return Vec::new();
    }
    let candidates = candidates(table, &query.filter);
    if let Some(wanted) = wanted
        && prefer_index_walk(table, query, &candidates, wanted)
        && let Some(rows) = index_walk(table, query, &order, wanted, after)
    {
        return page(rows, query.offset, wanted);
    }
    let beyond = |row: &Row| after.is_none_or(|a| order.compare(row, a) == Ordering::Greater);
    let rows: Vec<Row> = candidates.rows(table, &query.filter).filter(|r| beyond(r)).cloned().collect();
    sort_page(rows, &order, query.offset, wanted)
}

/// Sorts just enough of `rows` to return the page `offset..wanted`.
fn sort_page(mut rows: Vec<Row>, order: &RowOrder, offset: usize, wanted: Option<usize>) -> Vec<Row> {
    let cmp = |a: &Row, b: &Row| order.compare(a, b);
    match wanted {
        Some(wanted) if wanted < rows.len() => {
            // Partition around the last wanted row, then sort only the front.
            rows.select_nth_unstable_by(wanted - 1, cmp);
            rows.truncate(wanted);
            rows.sort_unstable_by(cmp);
        }
        _ => rows.sort_unstable_by(cmp),
    }
    page(rows, offset, wanted.unwrap_or(usize::MAX))
}

fn page(mut rows: Vec<Row>, offset: usize, wanted: usize) -> Vec<Row> {
    rows.truncate(wanted);
    if offset >= rows.len() {
        return Vec::new();
    }
    rows.drain(..offset);
    rows
}

/// Whether walking the first order column's index beats narrowing by the filter: it does unless
/// the filter's own index access already yields few rows.
fn prefer_index_walk(table: &Table, query: &Query, candidates: &Candidates<'_>, wanted: usize) -> bool {
    let Some(first) = query.order.first() else { return false };
    if !table.schema.indexed.contains(&first.column) {
        return false;
    }
    match candidates {
        Candidates::None => false,
        Candidates::All => true,
        // Sorting a few candidates is cheaper than a walk that may skip many rows the
        // filter rejects.
        Candidates::Keys(keys) => keys.len() > wanted.saturating_mul(8).max(1024),
    }
}

/// Reads rows in the order of the first `ORDER BY` column's index until `wanted` rows passed
/// the filter (and come after `after`). Rows that tie on that column are sorted by the rest of
/// the order before they are emitted, so the result is exactly the sorted prefix.
fn index_walk(table: &Table, query: &Query, order: &RowOrder, wanted: usize, after: Option<&Row>) -> Option<Vec<Row>> {
    let first = query.order.first()?;
    // Comparisons on the order column bound the walk, and leave out its NULLs.
    let (mut lo, mut hi, mut with_nulls) = match column_range(table, &query.filter, first.column) {
        Some(None) => return Some(Vec::new()),
        Some(Some((lo, hi))) => (lo, hi, false),
        None => (Bound::Excluded(Value::Null), Bound::Unbounded, true),
    };
    let mut with_values = true;
    // Start the walk at `after`'s value rather than skipping every row before it.
    if let Some(after) = after {
        match after.get(first.column) {
            Some(v) if !v.is_null() => {
                if first.descending {
                    hi = tighter_upper(hi, Bound::Included(v.clone()));
                } else {
                    lo = tighter_lower(lo, Bound::Included(v.clone()));
                }
                with_nulls &= !first.nulls_first;
            }
            _ => with_values = first.nulls_first,
        }
    }
    let values: Box<dyn Iterator<Item = &Key>> = if !with_values || empty(&lo, &hi) {
        Box::new(std::iter::empty())
    } else if first.descending {
        Box::new(table.index_range_desc(first.column, (lo, hi))?)
    } else {
        Box::new(table.index_range(first.column, (lo, hi))?)
    };
    let nulls = if with_nulls { Some(table.index_range(first.column, Value::Null..=Value::Null)?) } else { None };
    let nulls = nulls.into_iter().flatten();
    let keys: Box<dyn Iterator<Item = &Key>> =
        if first.nulls_first { Box::new(nulls.chain(values)) } else { Box::new(values.chain(nulls)) };

    let mut out: Vec<Row> = Vec::with_capacity(wanted.min(table.len()));
    let mut tie: Vec<Row> = Vec::new();
    let flush = |tie: &mut Vec<Row>, out: &mut Vec<Row>| {
        tie.sort_unstable_by(|a, b| order.compare(a, b));
        out.append(tie);
    };
    let column = |row: &Row| -> Value { row.get(first.column).cloned().unwrap_or(Value::Null) };
    for row in keys.filter_map(|k| table.get(k)) {
        if !query.filter.matches(row) || after.is_some_and(|a| order.compare(row, a) != Ordering::Greater) {
            continue;
        }
        if let Some(last) = tie.first()
            && first.compare_values(&column(last), &column(row)) != Ordering::Equal
        {
            flush(&mut tie, &mut out);
            if out.len() >= wanted {
                return Some(out);
            }
        }
        tie.push(row.clone());
    }
    flush(&mut tie, &mut out);
    Some(out)
}
