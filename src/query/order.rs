//! Row order: `ORDER BY` columns with PostgreSQL's NULL placement, ties broken by primary key.
//!
//! One comparator serves a one-shot query, a page refill from an index and, later, a live
//! query that must place an updated row among the rows it already shows: they must all agree,
//! or a live result would drift away from what a fresh query returns.

use std::cmp::Ordering;

use crate::value::Value;

/// One `ORDER BY` term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderBy {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

impl OrderBy {
    /// PostgreSQL's defaults: `ASC NULLS LAST`.
    pub fn asc(column: usize) -> OrderBy {
        OrderBy { column, descending: false, nulls_first: false }
    }

    /// PostgreSQL's defaults: `DESC NULLS FIRST`.
    pub fn desc(column: usize) -> OrderBy {
        OrderBy { column, descending: true, nulls_first: true }
    }

    /// Compares two values of this term's column. NULLs go where `nulls_first` says whatever
    /// the direction; other values compare by [`Value`]'s order, which matches PostgreSQL's for
    /// values of one column (numeric by value, NaN above all numbers, text by bytes as in the
    /// C collation).
    pub fn compare_values(&self, a: &Value, b: &Value) -> Ordering {
        match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if self.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if self.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let ordering = a.cmp(b);
                if self.descending { ordering.reverse() } else { ordering }
            }
        }
    }
}

/// A total order on the rows of one table: the `ORDER BY` terms, then the primary key
/// ascending, so that equal sort keys still come out in one stable order and pages never
/// overlap or skip a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RowOrder {
    pub order: Vec<OrderBy>,
    /// Positions of the primary-key columns.
    pub key: Vec<usize>,
}

impl RowOrder {
    pub fn new(order: Vec<OrderBy>, key: Vec<usize>) -> RowOrder {
        RowOrder { order, key }
    }

    pub fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        compare_rows(&self.order, &self.key, a, b)
    }
}

/// Compares two rows by `order`, then by the primary-key columns `key` ascending. A column
/// position outside a row reads as NULL.
pub fn compare_rows(order: &[OrderBy], key: &[usize], a: &[Value], b: &[Value]) -> Ordering {
    let at = |row: &[Value], i: usize| row.get(i).cloned().unwrap_or(Value::Null);
    for term in order {
        let ordering = match (a.get(term.column), b.get(term.column)) {
            (Some(x), Some(y)) => term.compare_values(x, y),
            _ => term.compare_values(&at(a, term.column), &at(b, term.column)),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    for &k in key {
        let ordering = match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => at(a, k).cmp(&at(b, k)),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {

    use super::*;

    fn sorted(order: &[OrderBy], mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
        rows.sort_by(|a, b| compare_rows(order, &[0], a, b));
        rows
    }

    fn ids(rows: &[Vec<Value>]) -> Vec<i32> {
        rows.iter().map(|r| if let Value::Int4(i) = r[0] { i } else { -1 }).collect()
    }

    fn rows() -> Vec<Vec<Value>> {
        vec![
            vec![Value::Int4(1), Value::Int4(5)],
            vec![Value::Int4(2), Value::Null],
            vec![Value::Int4(3), Value::Int4(-1)],
            vec![Value::Int4(4), Value::Int4(5)],
            vec![Value::Int4(5), Value::Null],
        ]
    }

    #[test]
    fn postgres_null_placement() {
        assert_eq!(ids(&sorted(&[OrderBy::asc(1)], rows())), [3, 1, 4, 2, 5]);
        assert_eq!(ids(&sorted(&[OrderBy::desc(1)], rows())), [2, 5, 1, 4, 3]);
        let asc_nulls_first = OrderBy { column: 1, descending: false, nulls_first: true };
        assert_eq!(ids(&sorted(&[asc_nulls_first], rows())), [2, 5, 3, 1, 4]);
        let desc_nulls_last = OrderBy { column: 1, descending: true, nulls_first: false };
        assert_eq!(ids(&sorted(&[desc_nulls_last], rows())), [1, 4, 3, 2, 5]);
    }

    #[test]
    fn ties_break_by_key_ascending_even_when_descending() {
        // Rows 1 and 4 tie on 5; rows 2 and 5 tie on NULL: key order inside each tie.
        let order = [OrderBy::desc(1)];
        let got = sorted(&order, rows().into_iter().rev().collect());
        assert_eq!(ids(&got), [2, 5, 1, 4, 3]);
    }

    #[test]
    fn numeric_orders_by_value_and_nan_last() {
        let n = |s: &str| Value::Numeric(s.into());
        let rows = vec![
            vec![Value::Int4(1), n("10")],
            vec![Value::Int4(2), n("9.99")],
            vec![Value::Int4(3), n("NaN")],
            vec![Value::Int4(4), n("-Infinity")],
        ];
        assert_eq!(ids(&sorted(&[OrderBy::asc(1)], rows)), [4, 2, 1, 3]);
    }
}
