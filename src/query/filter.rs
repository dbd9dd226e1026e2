//! The filter language: a boolean expression over one table's columns, evaluated with SQL's
//! three-valued logic.
//!
//! GraphQL `where`, the role policy's row filters, live queries and KPIs all compile to a
//! [`Filter`], so a row passes the same way everywhere. A comparison with NULL is *unknown*;
//! `NOT unknown` is unknown; `AND`/`OR` follow SQL's truth tables; a row passes only when the
//! whole filter is TRUE — exactly what `WHERE` does in PostgreSQL.

use std::cmp::Ordering;
use std::sync::Arc;

use super::compare::sql_cmp;
use super::like::like_matches;
use crate::value::Value;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CompareOp {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Neq => ordering != Ordering::Equal,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Gte => ordering != Ordering::Less,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Lte => ordering != Ordering::Greater,
        }
    }
}

/// A boolean expression over the columns of one table (columns are positions in its schema).
///
/// Build it from user input, then pass it through [`Filter::validate`] against the table's
/// schema before evaluating it.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    True,
    False,
    /// TRUE when every part is (an empty `And` is TRUE).
    And(Vec<Filter>),
    /// TRUE when any part is (an empty `Or` is FALSE).
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        column: usize,
        op: CompareOp,
        value: Value,
    },
    /// `column IN (values)`, or `NOT IN` when `negated`. An empty list is FALSE for `IN` and
    /// TRUE for `NOT IN`, even for a NULL column (as `= ANY('{}')` and `<> ALL('{}')`).
    In {
        column: usize,
        values: Vec<Value>,
        negated: bool,
    },
    /// SQL `LIKE` (or `ILIKE`) with `%`, `_` and `\` as the escape character.
    Like {
        column: usize,
        pattern: Arc<str>,
        case_insensitive: bool,
    },
    /// `IS NULL` when `is_null`, else `IS NOT NULL`; never unknown.
    IsNull {
        column: usize,
        is_null: bool,
    },
}

/// SQL's three truth values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn of(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }
}

impl Filter {
    /// Whether the row passes: the filter evaluates to TRUE (not FALSE, not unknown).
    pub fn matches(&self, row: &[Value]) -> bool {
        self.eval(row) == Truth::True
    }

    /// The filter's truth value for a row. A column position outside the row reads as unknown.
    pub fn eval(&self, row: &[Value]) -> Truth {
        match self {
            Filter::True => Truth::True,
            Filter::False => Truth::False,
            Filter::And(parts) => {
                let mut result = Truth::True;
                for part in parts {
                    match part.eval(row) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                result
            }
            Filter::Or(parts) => {
                let mut result = Truth::False;
                for part in parts {
                    match part.eval(row) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                result
            }
            Filter::Not(inner) => inner.eval(row).not(),
            Filter::Compare { column, op, value } => match row.get(*column).and_then(|v| sql_cmp(v, value)) {
                Some(ordering) => Truth::of(op.holds(ordering)),
                None => Truth::Unknown,
            },
            Filter::In { column, values, negated } => {
                let found = in_list(row.get(*column), values);
                if *negated { found.not() } else { found }
            }
            Filter::Like { column, pattern, case_insensitive } => match row.get(*column) {
                Some(Value::Text(text)) => Truth::of(like_matches(text, pattern, *case_insensitive)),
                _ => Truth::Unknown,
            },
            Filter::IsNull { column, is_null } => match row.get(*column) {
                Some(v) => Truth::of(v.is_null() == *is_null),
                None => Truth::Unknown,
            },
        }
    }

    /// Positions of the columns the filter reads, sorted, without duplicates.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect_columns(&self, out: &mut Vec<usize>) {
        match self {
            Filter::True | Filter::False => {}
            Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| p.collect_columns(out)),
            Filter::Not(inner) => inner.collect_columns(out),
            Filter::Compare { column, .. }
            | Filter::In { column, .. }
            | Filter::Like { column, .. }
            | Filter::IsNull { column, .. } => out.push(*column),
        }
    }

    /// Both filters (SQL `AND`), flattened: `True` drops out, `False` absorbs.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::True, f) | (f, Filter::True) => f,
            (Filter::False, _) | (_, Filter::False) => Filter::False,
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), f) => {
                a.push(f);
                Filter::And(a)
            }
            (f, Filter::And(mut b)) => {
                b.insert(0, f);
                Filter::And(b)
            }
            (a, b) => Filter::And(vec![a, b]),
        }
    }

    /// The conjuncts of the filter's top level: the parts that must all be TRUE.
    pub fn conjuncts(&self) -> &[Filter] {
        match self {
            Filter::And(parts) => parts,
            other => std::slice::from_ref(other),
        }
    }
}

/// `value IN (list)`: TRUE on an equal element; otherwise unknown when the value or any element
/// is NULL; otherwise FALSE. An empty list is FALSE whatever the value.
fn in_list(value: Option<&Value>, list: &[Value]) -> Truth {
    if list.is_empty() {
        return Truth::False;
    }
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Truth::Unknown;
    };
    let mut result = Truth::False;
    for item in list {
        match sql_cmp(value, item) {
            Some(Ordering::Equal) => return Truth::True,
            Some(_) => {}
            None => result = Truth::Unknown,
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Value]) -> Vec<Value> {
        values.to_vec()
    }

    fn cmp(column: usize, op: CompareOp, value: Value) -> Filter {
        Filter::Compare { column, op, value }
    }

    #[test]
    fn null_comparisons_are_unknown_and_do_not_pass() {
        let r = row(&[Value::Null, Value::Int4(1)]);
        for op in [CompareOp::Eq, CompareOp::Neq, CompareOp::Gt, CompareOp::Gte, CompareOp::Lt, CompareOp::Lte] {
            let f = cmp(0, op, Value::Int4(1));
            assert_eq!(f.eval(&r), Truth::Unknown);
            assert!(!f.matches(&r));
            // NOT unknown is still unknown: the row passes neither the filter nor its negation.
            assert!(!Filter::Not(Box::new(f)).matches(&r));
        }
        // Comparing with a NULL literal is unknown too, even for a NULL column.
        assert_eq!(cmp(0, CompareOp::Eq, Value::Null).eval(&r), Truth::Unknown);
        assert_eq!(cmp(1, CompareOp::Neq, Value::Null).eval(&r), Truth::Unknown);
    }

    #[test]
    fn and_or_follow_sql_truth_tables() {
        let r = row(&[Value::Null, Value::Int4(1)]);
        let unknown = cmp(0, CompareOp::Eq, Value::Int4(1));
        let t = cmp(1, CompareOp::Eq, Value::Int4(1));
        let f = cmp(1, CompareOp::Eq, Value::Int4(2));
        assert_eq!(Filter::And(vec![unknown.clone(), f.clone()]).eval(&r), Truth::False);
        assert_eq!(Filter::And(vec![unknown.clone(), t.clone()]).eval(&r), Truth::Unknown);
        assert_eq!(Filter::Or(vec![unknown.clone(), t.clone()]).eval(&r), Truth::True);
        assert_eq!(Filter::Or(vec![unknown.clone(), f.clone()]).eval(&r), Truth::Unknown);
        assert_eq!(Filter::Not(Box::new(Filter::Or(vec![unknown, f]))).eval(&r), Truth::Unknown);
        assert_eq!(Filter::And(vec![]).eval(&r), Truth::True);
        assert_eq!(Filter::Or(vec![]).eval(&r), Truth::False);
    }

    #[test]
    fn in_with_nulls() {
        let one = row(&[Value::Int4(1)]);
        let null = row(&[Value::Null]);
        let list = |values: Vec<Value>, negated| Filter::In { column: 0, values, negated };
        assert_eq!(list(vec![Value::Int4(1), Value::Null], false).eval(&one), Truth::True);
        assert_eq!(list(vec![Value::Int4(2), Value::Null], false).eval(&one), Truth::Unknown);
        // NOT IN with a NULL in the list never passes: the classic SQL trap.
        assert_eq!(list(vec![Value::Int4(2), Value::Null], true).eval(&one), Truth::Unknown);
        assert_eq!(list(vec![Value::Int4(2)], true).eval(&one), Truth::True);
        assert_eq!(list(vec![Value::Int4(1)], false).eval(&null), Truth::Unknown);
        assert_eq!(list(vec![], false).eval(&null), Truth::False);
        assert_eq!(list(vec![], true).eval(&null), Truth::True);
    }

    #[test]
    fn is_null_is_never_unknown() {
        let null = row(&[Value::Null]);
        assert!(Filter::IsNull { column: 0, is_null: true }.matches(&null));
        assert!(Filter::Not(Box::new(Filter::IsNull { column: 0, is_null: false })).matches(&null));
    }

    #[test]
    fn like_on_null_is_unknown() {
        let f = Filter::Like { column: 0, pattern: "%".into(), case_insensitive: false };
        assert_eq!(f.eval(&[Value::Null]), Truth::Unknown);
        assert_eq!(f.eval(&[Value::text("")]), Truth::True);
    }

    #[test]
    fn and_flattens() {
        let a = Filter::IsNull { column: 0, is_null: true };
        let b = Filter::IsNull { column: 1, is_null: true };
        let c = Filter::IsNull { column: 2, is_null: false };
        assert_eq!(Filter::True.and(a.clone()), a);
        assert_eq!(a.clone().and(Filter::False), Filter::False);
        let abc = a.clone().and(b.clone()).and(c.clone());
        assert_eq!(abc, Filter::And(vec![a, b, c]));
        assert_eq!(abc.columns(), vec![0, 1, 2]);
    }
}
