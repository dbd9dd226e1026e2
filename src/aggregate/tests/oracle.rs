//! The new functions and inputs against plain computations over the rows that remain after
//! random adds and removes: `count(DISTINCT)` by sorting and deduplicating, percentiles by
//! sorting and PostgreSQL's rank rule, and ages — derived at read time from accumulated
//! timestamps — against per-row differences with a column that holds `now`.

use proptest::prelude::*;

use super::{run, schema, script, timestamp};
use crate::aggregate::percentile::disc_rank;
use crate::aggregate::{AggFn, Aggregate, AggregateSpec, Input};
use crate::registry::{Column, ColumnType, TableSchema};
use crate::value::Value;

/// Columns with `percentile_disc` and `count(DISTINCT)`: qty, amount, score, label, big, small,
/// opened, local.
const ORDERED: [usize; 8] = [2, 3, 4, 5, 6, 7, 8, 10];

fn plain_percentile(mut values: Vec<Value>, fraction: f64) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort();
    values[disc_rank(fraction, values.len())].clone()
}

fn plain_distinct(mut values: Vec<Value>) -> Value {
    values.sort();
    values.dedup();
    Value::Int8(values.len() as i64)
}

/// The schema with two more columns that hold `now`, with and without zone.
fn schema_with_now() -> TableSchema {
    let mut s = schema();
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: false };
    s.columns.push(col("now", ColumnType::TimestampTz));
    s.columns.push(col("now_local", ColumnType::Timestamp));
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn distinct_counts_and_percentiles_equal_sorting_the_remaining_values(script in script()) {
        let mut measures = Vec::new();
        for c in ORDERED {
            measures.push((AggFn::CountDistinct, Input::Column(c)));
            for f in [AggFn::P50, AggFn::P90, AggFn::P95, AggFn::P99] {
                measures.push((f, Input::Column(c)));
            }
        }
        let spec = AggregateSpec { group_by: vec![], measures };
        let (live, present) = run(&spec, &script);
        let mut want = Vec::new();
        for c in ORDERED {
            let values: Vec<Value> = present.iter().map(|r| r[c].clone()).filter(|v| !v.is_null()).collect();
            want.push(plain_distinct(values.clone()));
            for p in [0.5, 0.9, 0.95, 0.99] {
                want.push(plain_percentile(values.clone(), p));
            }
        }
        let got = live.groups();
        prop_assert_eq!(got.len(), 1);
        // Value equality: equal numerics spelled apart (1.5, 1.50) are one answer.
        prop_assert_eq!(&got[0].values, &want);
        // And the spelling returned is one a remaining row holds.
        for v in &got[0].values {
            if let Value::Numeric(text) = v {
                prop_assert!(present.iter().any(|r| matches!(&r[3], Value::Numeric(t) if t == text)), "{text}");
            }
        }
    }

    #[test]
    fn ages_read_at_now_equal_differences_with_a_now_column(script in script(), now in timestamp(), grouped in any::<bool>()) {
        prop_assume!(now != i64::MIN && now != i64::MAX);
        let schema = schema_with_now();
        let group_by = if grouped { vec![1] } else { vec![] };
        let ages = AggregateSpec {
            group_by: group_by.clone(),
            measures: AggFn::ALL.iter().flat_map(|&f| [(f, Input::Age(8)), (f, Input::Age(10))]).collect(),
        };
        let diffs = AggregateSpec {
            group_by,
            measures: AggFn::ALL
                .iter()
                .flat_map(|&f| [(f, Input::Diff { later: 11, earlier: 8 }), (f, Input::Diff { later: 12, earlier: 10 })])
                .collect(),
        };
        let (live, present) = run(&ages, &script);
        let mut scratch = Aggregate::new(diffs, &schema).expect("valid spec");
        for row in &present {
            let mut row = row.clone();
            row.extend([Value::TimestampTz(now), Value::Timestamp(now)]);
            scratch.add(&row);
        }
        let got = live.groups_at(now);
        let want = scratch.groups();
        prop_assert_eq!(&got, &want);
        // Same spelling too (a numeric of scale 6 throughout), not only the same value.
        let texts = |groups: &[crate::aggregate::GroupResult]| -> Vec<String> {
            groups.iter().flat_map(|g| g.values.iter().map(Value::to_canonical_string)).collect()
        };
        prop_assert_eq!(texts(&got), texts(&want));
        // Without a `now`, ages are not made up.
        let unread = live.groups();
        for (g, (f, _)) in unread.iter().flat_map(|g| g.values.iter()).zip(ages.measures.iter().cycle()) {
            if !matches!(f, AggFn::Count | AggFn::CountDistinct) {
                prop_assert!(g.is_null());
            }
        }
    }
}

#[test]
fn ages_of_a_known_table() {
    let schema = schema_with_now();
    let spec = AggregateSpec {
        group_by: vec![],
        measures: vec![
            (AggFn::Sum, Input::Age(8)),
            (AggFn::Avg, Input::Age(8)),
            (AggFn::Min, Input::Age(8)),
            (AggFn::Max, Input::Age(8)),
            (AggFn::P90, Input::Age(8)),
            (AggFn::P50, Input::Age(8)),
            (AggFn::CountDistinct, Input::Age(8)),
            (AggFn::Count, Input::Age(8)),
        ],
    };
    let mut a = Aggregate::new(spec, &schema).expect("valid");
    let second = 1_000_000;
    let row = |t: Option<i64>| {
        let mut r = vec![Value::Null; 13];
        r[8] = t.map_or(Value::Null, Value::TimestampTz);
        r
    };
    for t in [Some(10 * second), Some(10 * second), Some(7 * second + 500_000), None, Some(i64::MAX)] {
        a.add(&row(t));
    }
    let now = 12 * second;
    let n = |s: &str| Value::Numeric(s.into());
    let texts = |values: &[Value]| values.iter().map(Value::to_canonical_string).collect::<Vec<_>>();
    // Ages 2, 2 and 4.5 seconds; the NULL and the infinite timestamp have none.
    assert_eq!(
        texts(&a.groups_at(now)[0].values),
        texts(&[
            n("8.500000"),
            n("2.8333333333333333"),
            n("2.000000"),
            n("4.500000"),
            n("4.500000"),
            n("2.000000"),
            Value::Int8(2),
            Value::Int8(3),
        ])
    );
}
