//! The filter language: a boolean expression over one table's columns, evaluated with SQL's
//! three-valued logic.
//!
//! GraphQL `where`, the role policy's row filters, live queries and KPIs all compile to a
//! [`Filter`], so a row passes the same way everywhere. A comparison with NULL is *unknown*;
//! `NOT unknown` is unknown; `AND`/`OR` follow SQL's truth tables; a row passes only when the
//! whole filter is TRUE — exactly what `WHERE` does in PostgreSQL.

use std::cmp::Ordering;
use std::sync::Arc;

use super::clock::wall_micros;
use super::compare::sql_cmp;
use super::like::like_matches;
use super::operand::{Operand, ago_literal, ago_next_change, compare_instant};
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
    pub(crate) fn holds(self, ordering: Ordering) -> bool {
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
    /// `column op operand`: another column of the row, or an instant relative to now (see
    /// [`Operand`]). NULL on either side is unknown, as with a literal.
    CompareWith {
        column: usize,
        op: CompareOp,
        operand: Operand,
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
    ///
    /// A time-relative filter (`ago`) is read at the wall clock; engines that can should call
    /// [`Filter::matches_at`] with their own instant instead, so one step sees one `now`.
    pub fn matches(&self, row: &[Value]) -> bool {
        self.eval(row) == Truth::True
    }

    /// Whether the row passes at the instant `now` (microseconds since the Unix epoch, UTC).
    pub fn matches_at(&self, row: &[Value], now: i64) -> bool {
        self.eval_at(row, now) == Truth::True
    }

    /// The filter's truth value for a row, `ago` read at the wall clock (see [`Filter::matches`]).
    pub fn eval(&self, row: &[Value]) -> Truth {
        self.truth(row, None)
    }

    /// The filter's truth value for a row at the instant `now`. A column position outside the
    /// row reads as unknown.
    pub fn eval_at(&self, row: &[Value], now: i64) -> Truth {
        self.truth(row, Some(now))
    }

    /// `now: None` reads the wall clock, only where an `ago` needs it: most filters have none,
    /// and their evaluation must not pay for a clock.
    fn truth(&self, row: &[Value], now: Option<i64>) -> Truth {
        match self {
            Filter::True => Truth::True,
            Filter::False => Truth::False,
            Filter::And(parts) => {
                let mut result = Truth::True;
                for part in parts {
                    match part.truth(row, now) {
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
                    match part.truth(row, now) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                result
            }
            Filter::Not(inner) => inner.truth(row, now).not(),
            Filter::Compare { column, op, value } => match row.get(*column).and_then(|v| sql_cmp(v, value)) {
                Some(ordering) => Truth::of(op.holds(ordering)),
                None => Truth::Unknown,
            },
            Filter::CompareWith { column, op, operand } => {
                let Some(value) = row.get(*column) else { return Truth::Unknown };
                let result = match operand {
                    Operand::Column(other) => row.get(*other).and_then(|o| sql_cmp(value, o)).map(|o| op.holds(o)),
                    Operand::Ago(ago) => compare_instant(value, *op, ago.instant(now.unwrap_or_else(wall_micros))),
                    Operand::Instant(instant) => compare_instant(value, *op, *instant),
                };
                result.map_or(Truth::Unknown, Truth::of)
            }
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

    /// Whether the filter's truth can change by time alone (it has an `ago` operand).
    pub fn is_time_relative(&self) -> bool {
        match self {
            Filter::And(parts) | Filter::Or(parts) => parts.iter().any(Filter::is_time_relative),
            Filter::Not(inner) => inner.is_time_relative(),
            Filter::CompareWith { operand: Operand::Ago(_), .. } => true,
            _ => false,
        }
    }

    /// The earliest instant after `now` at which this row's truth value could change by time
    /// alone; `None` when it never will. Until then the truth at `now` holds, so a caller can
    /// index rows by this instant instead of re-evaluating them all. It is the earliest change
    /// of any `ago` comparison in the filter, which `and`/`or`/`not` may mask (a wake-up that
    /// finds nothing changed is harmless) — except where a part that time cannot move decides
    /// the whole: an `and` with such a part false (an order of another warehouse) or an `or`
    /// with one true never changes, so its row is not watched at all.
    pub fn next_change(&self, row: &[Value], now: i64) -> Option<i64> {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                let deciding = if matches!(self, Filter::And(_)) { Truth::False } else { Truth::True };
                let mut next: Option<i64> = None;
                for p in parts {
                    match p.next_change(row, now) {
                        Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                        None if p.eval_at(row, now) == deciding => return None,
                        None => {}
                    }
                }
                next
            }
            Filter::Not(inner) => inner.next_change(row, now),
            Filter::CompareWith { column, op, operand: Operand::Ago(ago) } => {
                ago_next_change(row.get(*column)?, *op, *ago, now)
            }
            _ => None,
        }
    }

    /// The same filter with every `ago` fixed at `now`: a filter whose truth no longer moves,
    /// for the paths that scan or walk indexes (a timestamp bound becomes a literal an ordered
    /// index can serve). Filters without `ago` come back unchanged.
    pub fn at(&self, now: i64) -> Filter {
        if !self.is_time_relative() {
            return self.clone();
        }
        match self {
            Filter::And(parts) => Filter::And(parts.iter().map(|p| p.at(now)).collect()),
            Filter::Or(parts) => Filter::Or(parts.iter().map(|p| p.at(now)).collect()),
            Filter::Not(inner) => Filter::Not(Box::new(inner.at(now))),
            Filter::CompareWith { column, op, operand: Operand::Ago(ago) } => match ago_literal(*ago, now) {
                Some(value) => Filter::Compare { column: *column, op: *op, value },
                None => Filter::CompareWith { column: *column, op: *op, operand: Operand::Instant(ago.instant(now)) },
            },
            other => other.clone(),
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
            Filter::CompareWith { column, operand: Operand::Column(other), .. } => out.extend([*column, *other]),
            Filter::Compare { column, .. }
            | Filter::CompareWith { column, .. }
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

    fn ago(column: usize, op: CompareOp, micros: i64) -> Filter {
        let ago = super::super::operand::Ago { micros, kind: super::super::operand::TimeKind::TimestampTz };
        Filter::CompareWith { column, op, operand: Operand::Ago(ago) }
    }

    #[test]
    fn a_column_operand_compares_within_the_row() {
        let f = Filter::CompareWith { column: 0, op: CompareOp::Lt, operand: Operand::Column(1) };
        assert_eq!(f.eval(&[Value::Int4(3), Value::Int4(5)]), Truth::True);
        assert_eq!(f.eval(&[Value::Int4(5), Value::Int4(5)]), Truth::False);
        // Numbers of different kinds compare by value, as with literals.
        assert_eq!(f.eval(&[Value::Int4(3), Value::Numeric("3.5".into())]), Truth::True);
        assert_eq!(f.eval(&[Value::Null, Value::Int4(5)]), Truth::Unknown);
        assert_eq!(f.eval(&[Value::Int4(3), Value::Null]), Truth::Unknown);
        assert!(!Filter::Not(Box::new(f.clone())).matches(&[Value::Int4(3), Value::Null]));
        assert_eq!(f.columns(), [0, 1]);
        assert!(!f.is_time_relative());
        assert_eq!(f.next_change(&[Value::Int4(3), Value::Int4(5)], 0), None);
    }

    #[test]
    fn ago_is_judged_at_the_given_instant() {
        let now = 1_000_000_000;
        let f = ago(0, CompareOp::Lt, 600);
        let row = [Value::TimestampTz(now - 599)];
        assert_eq!(f.eval_at(&row, now), Truth::False);
        assert_eq!(f.eval_at(&row, now + 1), Truth::False, "created 600 µs ago is not older than 600 µs");
        assert_eq!(f.eval_at(&row, now + 2), Truth::True);
        assert_eq!(f.eval_at(&[Value::Null], now), Truth::Unknown);
        assert!(!Filter::Not(Box::new(f.clone())).matches_at(&[Value::Null], now));
        assert!(f.is_time_relative() && Filter::Not(Box::new(f.clone())).is_time_relative());
        assert_eq!(f.next_change(&row, now), Some(now + 2));
        // Dates compare as their midnight; infinity never changes.
        let d = Filter::CompareWith {
            column: 0,
            op: CompareOp::Gte,
            operand: Operand::Ago(super::super::operand::Ago {
                micros: 0,
                kind: super::super::operand::TimeKind::Date,
            }),
        };
        let day = 86_400_000_000;
        assert_eq!(d.eval_at(&[Value::Date(1)], day), Truth::True);
        assert_eq!(d.eval_at(&[Value::Date(1)], day + 1), Truth::False);
        assert_eq!(d.next_change(&[Value::Date(1)], day), Some(day + 1));
        assert_eq!(d.next_change(&[Value::Date(i32::MAX)], day), None);
        // Bound at an instant, the filter says the same and no longer moves.
        assert_eq!(f.at(now), Filter::Compare { column: 0, op: CompareOp::Lt, value: Value::TimestampTz(now - 600) });
        assert!(!d.at(day).is_time_relative());
        assert_eq!(d.at(day).eval(&[Value::Date(1)]), Truth::True);
    }

    #[test]
    fn a_part_time_cannot_move_decides_whether_a_row_is_watched() {
        let now = 10_000;
        let older = ago(0, CompareOp::Lt, 100);
        let other = Filter::IsNull { column: 1, is_null: true };
        let (young_null, young_set) =
            ([Value::TimestampTz(now - 50), Value::Null], [Value::TimestampTz(now - 50), Value::Int4(1)]);
        let and = Filter::And(vec![older.clone(), other.clone()]);
        assert_eq!(and.next_change(&young_null, now), Some(now + 51));
        assert_eq!(and.next_change(&young_set, now), None, "the other part is false for good");
        let or = Filter::Or(vec![older.clone(), other]);
        assert_eq!(or.next_change(&young_null, now), None, "the other part is true for good");
        assert_eq!(or.next_change(&young_set, now), Some(now + 51));
    }

    #[test]
    fn next_change_is_the_first_instant_the_truth_differs() {
        let now = 10_000;
        let row = [Value::TimestampTz(now - 50), Value::TimestampTz(now - 5)];
        for op in [CompareOp::Eq, CompareOp::Neq, CompareOp::Gt, CompareOp::Gte, CompareOp::Lt, CompareOp::Lte] {
            for micros in [0, 5, 49, 50, 51, 100] {
                let f = ago(0, op, micros);
                match f.next_change(&row, now) {
                    Some(at) => {
                        assert!(at > now);
                        assert_eq!(f.eval_at(&row, at - 1), f.eval_at(&row, now), "{op:?} {micros}");
                        assert_ne!(f.eval_at(&row, at), f.eval_at(&row, now), "{op:?} {micros}");
                    }
                    None => assert_eq!(f.eval_at(&row, now + 1_000_000), f.eval_at(&row, now), "{op:?} {micros}"),
                }
            }
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn op() -> impl Strategy<Value = CompareOp> {
            prop::sample::select(vec![
                CompareOp::Eq,
                CompareOp::Neq,
                CompareOp::Gt,
                CompareOp::Gte,
                CompareOp::Lt,
                CompareOp::Lte,
            ])
        }

        fn filter() -> impl Strategy<Value = Filter> {
            let leaf = prop_oneof![
                4 => (0usize..2, op(), 0i64..40).prop_map(|(c, op, m)| ago(c, op, m)),
                1 => (op()).prop_map(|op| Filter::CompareWith { column: 0, op, operand: Operand::Column(1) }),
                1 => (0usize..2).prop_map(|column| Filter::IsNull { column, is_null: false }),
            ];
            leaf.prop_recursive(3, 10, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
                    inner.prop_map(|f| Filter::Not(Box::new(f))),
                ]
            })
        }

        fn time() -> impl Strategy<Value = Value> {
            prop_oneof![1 => Just(Value::Null), 6 => (-40i64..40).prop_map(Value::TimestampTz)]
        }

        proptest! {
            /// The truth at `now` holds at every instant up to (not including) `next_change`,
            /// and without a next change it holds for good.
            #[test]
            fn truth_holds_until_next_change(f in filter(), a in time(), b in time(), now in -20i64..20) {
                let row = [a, b];
                let truth = f.eval_at(&row, now);
                let end = f.next_change(&row, now).unwrap_or(now + 200);
                prop_assert!(end > now);
                for t in now..end {
                    prop_assert_eq!(f.eval_at(&row, t), truth, "at {}", t);
                }
                // Binding at an instant changes nothing about the answer then.
                prop_assert_eq!(f.at(now).eval_at(&row, now + 12345), truth);
            }
        }
    }
}
