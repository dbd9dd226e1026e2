//! Windows against recomputation: after random row changes and explicit moves of time (never
//! sleeps), a windowed aggregate equals a fresh aggregate over the remaining rows whose
//! timestamp is at or after the window's cutoff at that time; `next_expiry` is exactly the
//! first time `advance` removes something.

use std::sync::Arc;

use proptest::prelude::*;

use super::{T0, schema, timestamp, value_row};
use crate::aggregate::{AggFn, Aggregate, AggregateSpec, Input, Span, TimeWindow, WindowedAggregate};
use crate::change::Row;
use crate::value::Value;

#[derive(Clone, Debug)]
enum Step {
    Insert(Vec<Value>),
    Delete(usize),
    Update(usize, Vec<Value>),
    /// An update of a column no measure, group or window reads (`score`): the row's groups
    /// stay as they are, and only the version held for its removal changes.
    Touch(usize, f64),
    /// Time moves forward by this many microseconds.
    Tick(i64),
    /// Time moves to just before, then exactly to, the next expiry.
    ToNextExpiry,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => value_row().prop_map(Step::Insert),
        1 => any::<usize>().prop_map(Step::Delete),
        2 => (any::<usize>(), value_row()).prop_map(|(i, r)| Step::Update(i, r)),
        2 => (any::<usize>(), any::<f64>()).prop_map(|(i, x)| Step::Touch(i, x)),
        2 => (0i64..6 * 3_600_000_000).prop_map(Step::Tick),
        1 => Just(Step::ToNextExpiry),
    ];
    prop::collection::vec(step, 0..100)
}

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        (0i64..3 * 86_400_000_000).prop_map(|micros| Span::Last { micros }),
        prop::sample::select(vec![chrono_tz::Europe::Berlin, chrono_tz::America::Sao_Paulo, chrono_tz::Asia::Kolkata])
            .prop_map(|tz| Span::Today { tz }),
    ]
}

fn spec(grouped: bool) -> AggregateSpec {
    AggregateSpec {
        group_by: if grouped { vec![1] } else { vec![] },
        measures: vec![
            (AggFn::Sum, Input::Column(2)),
            (AggFn::Avg, Input::Column(3)),
            (AggFn::Max, Input::Column(5)),
            (AggFn::P90, Input::Column(3)),
            (AggFn::CountDistinct, Input::Column(5)),
            (AggFn::P50, Input::Age(8)),
            (AggFn::Avg, Input::Age(8)),
            (AggFn::Min, Input::Age(8)),
            (AggFn::Sum, Input::Diff { later: 9, earlier: 8 }),
            (AggFn::P99, Input::Diff { later: 9, earlier: 8 }),
        ],
    }
}

/// The rows of `present` in the window at `now`, aggregated from scratch.
fn recomputed(spec: &AggregateSpec, span: Span, present: &[Row], now: i64) -> Aggregate {
    let mut a = Aggregate::new(spec.clone(), &schema()).expect("valid spec");
    let cutoff = span.cutoff(now);
    for row in present {
        if matches!(row[8], Value::TimestampTz(t) if t >= cutoff) {
            a.add(row);
        }
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn windowed_equals_recomputed_as_rows_change_and_time_passes(
        steps in steps(),
        span in span(),
        start in timestamp().prop_filter("finite", |t| *t != i64::MIN && *t != i64::MAX),
        grouped in any::<bool>(),
    ) {
        let spec = spec(grouped);
        let window = TimeWindow { column: 8, span };
        let mut now = start;
        let mut live = WindowedAggregate::new(spec.clone(), &schema(), window, now).expect("valid");
        let mut present: Vec<Row> = Vec::new();
        for step in steps {
            match step {
                Step::Insert(row) => {
                    let row: Row = Arc::from(row);
                    live.apply(None, Some(&row), now);
                    present.push(row);
                }
                Step::Delete(i) if !present.is_empty() => {
                    let row = present.remove(i % present.len());
                    live.apply(Some(&row), None, now);
                }
                Step::Update(i, new) if !present.is_empty() => {
                    let i = i % present.len();
                    let new: Row = Arc::from(new);
                    live.apply(Some(&present[i]), Some(&new), now);
                    present[i] = new;
                }
                Step::Touch(i, x) if !present.is_empty() => {
                    let i = i % present.len();
                    let mut new = present[i].to_vec();
                    new[4] = Value::Float8(x);
                    let new: Row = Arc::from(new);
                    live.apply(Some(&present[i]), Some(&new), now);
                    present[i] = new;
                }
                Step::Delete(_) | Step::Update(..) | Step::Touch(..) => {}
                Step::Tick(dt) => {
                    now += dt;
                    live.advance(now);
                }
                Step::ToNextExpiry => {
                    if let Some(at) = live.next_expiry() {
                        prop_assert!(at > now, "an expiry {at} not after now {now}");
                        prop_assert!(!live.advance(at - 1), "something expired before the next expiry");
                        prop_assert!(live.advance(at), "nothing expired at the next expiry");
                        now = at;
                    }
                }
            }
            let want = recomputed(&spec, span, &present, now);
            prop_assert_eq!(live.groups_at(now), want.groups_at(now));
            prop_assert_eq!(live.rows(), want.rows());
        }
    }
}

#[test]
fn rows_without_a_timestamp_or_before_the_window_are_not_counted() {
    let spec = AggregateSpec { group_by: vec![], measures: vec![] };
    let window = TimeWindow { column: 8, span: Span::Last { micros: 1_000 } };
    let mut w = WindowedAggregate::new(spec, &schema(), window, T0).expect("valid");
    let row = |t: Value| -> Row {
        let mut r = vec![Value::Null; 11];
        r[8] = t;
        Arc::from(r)
    };
    assert!(!w.apply(None, Some(&row(Value::Null)), T0));
    assert!(!w.apply(None, Some(&row(Value::TimestampTz(T0 - 1_001))), T0));
    assert!(!w.apply(None, Some(&row(Value::TimestampTz(i64::MIN))), T0));
    assert!(w.apply(None, Some(&row(Value::TimestampTz(T0 - 1_000))), T0));
    // A row from the future counts, and stays until the window passes it.
    assert!(w.apply(None, Some(&row(Value::TimestampTz(T0 + 5_000))), T0));
    assert!(w.apply(None, Some(&row(Value::TimestampTz(i64::MAX))), T0));
    assert_eq!(w.rows(), 3);
    assert_eq!(w.next_expiry(), Some(T0 + 1));
    assert!(w.advance(T0 + 1));
    assert_eq!(w.next_expiry(), Some(T0 + 6_001));
    assert!(w.advance(T0 + 1_000_000));
    assert_eq!(w.rows(), 1, "an infinite timestamp never leaves");
    assert_eq!(w.next_expiry(), None);
    // Moving a row's timestamp out of the window takes it out.
    let inside = row(Value::TimestampTz(T0 + 1_000_000));
    assert!(w.apply(None, Some(&inside), T0 + 1_000_000));
    assert!(w.apply(Some(&inside), Some(&row(Value::TimestampTz(T0))), T0 + 1_000_000));
    assert_eq!(w.rows(), 1);
    let refused = WindowedAggregate::new(
        AggregateSpec::default(),
        &schema(),
        TimeWindow { column: 2, span: Span::Last { micros: 1 } },
        T0,
    );
    assert_eq!(
        refused.err().map(|e| e.to_string()).as_deref(),
        Some("column `qty` of type int4 cannot bound a time window: it must be timestamp or timestamptz")
    );
}

#[test]
fn today_expires_everything_at_the_next_local_midnight() {
    let spec = AggregateSpec { group_by: vec![], measures: vec![(AggFn::Count, Input::Column(8))] };
    let tz = chrono_tz::Europe::Berlin;
    let window = TimeWindow { column: 8, span: Span::Today { tz } };
    // 2024-03-31 is 23 hours long in Berlin: it starts 2024-03-30T23:00Z, ends 2024-03-31T22:00Z.
    let day_start = 1_711_839_600_000_000;
    let next_day = day_start + 23 * 3_600_000_000;
    let now = day_start + 3_600_000_000;
    let mut w = WindowedAggregate::new(spec, &schema(), window, now).expect("valid");
    let row = |t: i64| -> Row {
        let mut r = vec![Value::Null; 11];
        r[8] = Value::TimestampTz(t);
        Arc::from(r)
    };
    assert!(!w.apply(None, Some(&row(day_start - 1)), now), "yesterday");
    assert!(w.apply(None, Some(&row(day_start)), now));
    assert!(w.apply(None, Some(&row(next_day - 1)), now));
    assert!(w.apply(None, Some(&row(next_day)), now), "tomorrow counts as a future row");
    assert_eq!(w.next_expiry(), Some(next_day));
    assert!(!w.advance(next_day - 1));
    assert!(w.advance(next_day));
    assert_eq!(w.rows(), 1);
    assert_eq!(w.next_expiry(), Some(next_day + 24 * 3_600_000_000));
}
