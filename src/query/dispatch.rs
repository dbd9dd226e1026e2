//! Which of many filters on one table a changed row can pass, found without evaluating each.
//!
//! KPIs and row rules are often defined per entity: a rule per warehouse, a KPI per channel or
//! queue. Each then has a top-level equality (`warehouseId = 'WH-BER'`) that only one of them
//! can meet for a given row. Evaluating every filter on every change costs the number of
//! definitions on the table; looking the row's value up among those equalities costs the
//! number that can match. [`Dispatch`] indexes filters by one such conjunct (`=` or `IN` with
//! literals) and answers the candidates for a change's before and after images: a superset of
//! the filters either image passes, which the caller still evaluates. Filters without such a
//! conjunct are always candidates.
//!
//! Only values whose SQL equality is exactly [`Value`]'s own order are used as keys (booleans,
//! integers of any width, text, uuids, dates, times, timestamps): a row value of another kind
//! (a numeric, a float) makes every filter of that column a candidate, so no match is missed
//! where SQL would compare across kinds.

use std::collections::BTreeMap;

use super::filter::{CompareOp, Filter};
use crate::value::Value;

/// Filters of one table, by the equality each can be found through.
#[derive(Clone, Debug)]
pub struct Dispatch<T> {
    columns: Vec<ColumnKeys<T>>,
    /// Filters with no usable equality: candidates for every change.
    always: Vec<T>,
}

/// The filters keyed on one column.
#[derive(Clone, Debug)]
struct ColumnKeys<T> {
    column: usize,
    by_value: BTreeMap<Value, Vec<T>>,
    /// Every filter keyed here, for a row value that cannot be looked up.
    all: Vec<T>,
}

impl<T> Default for Dispatch<T> {
    fn default() -> Dispatch<T> {
        Dispatch { columns: Vec::new(), always: Vec::new() }
    }
}

/// Whether SQL equality on this value is exactly `Value`'s order (see the module's note).
fn exact(value: &Value) -> bool {
    matches!(
        value,
        Value::Bool(_)
            | Value::Int2(_)
            | Value::Int4(_)
            | Value::Int8(_)
            | Value::Text(_)
            | Value::Uuid(_)
            | Value::Date(_)
            | Value::Time(_)
            | Value::Timestamp(_)
            | Value::TimestampTz(_)
    )
}

/// The column and values a filter can be found through: the first top-level conjunct that
/// must hold for the filter to be TRUE and holds only for these values.
fn key_of(filter: &Filter) -> Option<(usize, &[Value])> {
    filter.conjuncts().iter().find_map(|part| match part {
        Filter::Compare { column, op: CompareOp::Eq, value } if exact(value) => {
            Some((*column, std::slice::from_ref(value)))
        }
        Filter::In { column, values, negated: false } if values.iter().all(exact) => Some((*column, &values[..])),
        _ => None,
    })
}

impl<T: Copy + Ord> Dispatch<T> {
    /// Indexes `filters` (each with what the caller knows it by).
    pub fn new<'a>(filters: impl IntoIterator<Item = (T, &'a Filter)>) -> Dispatch<T> {
        let mut dispatch = Dispatch::default();
        for (item, filter) in filters {
            let Some((column, values)) = key_of(filter) else {
                dispatch.always.push(item);
                continue;
            };
            let at = match dispatch.columns.iter().position(|c| c.column == column) {
                Some(at) => at,
                None => {
                    dispatch.columns.push(ColumnKeys { column, by_value: BTreeMap::new(), all: Vec::new() });
                    dispatch.columns.len() - 1
                }
            };
            let keys = &mut dispatch.columns[at];
            keys.all.push(item);
            for value in values {
                keys.by_value.entry(value.clone()).or_default().push(item);
            }
        }
        dispatch
    }

    /// Whether no filter is indexed at all.
    pub fn is_empty(&self) -> bool {
        self.always.is_empty() && self.columns.is_empty()
    }

    /// The filters the row before or after a change may pass, each once, in order: every one
    /// that either image passes is among them.
    pub fn candidates(&self, before: Option<&[Value]>, after: Option<&[Value]>) -> Vec<T> {
        let mut out = self.always.clone();
        for keys in &self.columns {
            for row in [before, after].into_iter().flatten() {
                match row.get(keys.column) {
                    // NULL equals nothing, and a missing column reads as NULL.
                    None | Some(Value::Null) => {}
                    Some(v) if exact(v) => out.extend(keys.by_value.get(v).into_iter().flatten()),
                    Some(_) => out.extend(&keys.all),
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(column: usize, value: Value) -> Filter {
        Filter::Compare { column, op: CompareOp::Eq, value }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn a_row_finds_the_filters_of_its_values_and_those_without_an_equality() {
        let by_warehouse =
            |w: &str| eq(0, text(w)).and(Filter::Compare { column: 1, op: CompareOp::Lt, value: Value::Int4(5) });
        let filters = [
            (1, by_warehouse("BER")),
            (2, by_warehouse("HAM")),
            (3, Filter::True),
            (4, Filter::In { column: 2, values: vec![text("new"), text("open")], negated: false }),
            (5, Filter::In { column: 2, values: vec![text("new")], negated: true }),
            (6, eq(1, Value::Int8(7))),
        ];
        let dispatch = Dispatch::new(filters.iter().map(|(i, f)| (*i, f)));
        let row = |w: &str, n: Value, s: &str| vec![text(w), n, text(s)];
        let ber = row("BER", Value::Int4(1), "done");
        assert_eq!(dispatch.candidates(Some(&ber), None), vec![1, 3, 5]);
        // An update from one warehouse to another is a candidate of both; an integer of another
        // width still finds its equality.
        let ham = row("HAM", Value::Int2(7), "open");
        assert_eq!(dispatch.candidates(Some(&ber), Some(&ham)), vec![1, 2, 3, 4, 5, 6]);
        // NULL passes no equality.
        let none = row("MUC", Value::Null, "closed");
        assert_eq!(dispatch.candidates(None, Some(&none)), vec![3, 5]);
        // A numeric may equal an integer in SQL: every filter keyed on that column is a candidate.
        let numeric = row("MUC", Value::Numeric("7.0".into()), "closed");
        assert_eq!(dispatch.candidates(Some(&numeric), None), vec![3, 5, 6]);
    }

    /// The property the callers rely on: every filter a row passes is a candidate.
    #[test]
    fn every_filter_a_row_passes_is_a_candidate() {
        let values = [
            Value::Null,
            Value::Int2(1),
            Value::Int8(1),
            Value::Int4(2),
            text("a"),
            text("b"),
            Value::Numeric("1".into()),
            Value::Float8(2.0),
            Value::Bool(true),
        ];
        let mut filters = Vec::new();
        for (i, v) in values.iter().enumerate() {
            filters.push((i * 4, eq(0, v.clone())));
            filters.push((i * 4 + 1, eq(1, v.clone()).and(eq(0, text("a")))));
            filters.push((i * 4 + 2, Filter::In { column: 1, values: vec![v.clone(), text("b")], negated: false }));
            filters.push((i * 4 + 3, Filter::Not(Box::new(eq(0, v.clone())))));
        }
        let dispatch = Dispatch::new(filters.iter().map(|(i, f)| (*i, f)));
        for a in &values {
            for b in &values {
                let row = vec![a.clone(), b.clone()];
                let candidates = dispatch.candidates(None, Some(&row));
                for (i, f) in &filters {
                    if f.matches(&row) {
                        assert!(candidates.contains(i), "filter {i} ({f:?}) passes {row:?} but is no candidate");
                    }
                }
            }
        }
    }
}
