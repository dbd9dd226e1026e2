//! Tests of the aggregate engine: incremental results equal a from-scratch computation after
//! any sequence of adds and removes, and result types and NULL handling follow SQL.

mod oracle;
mod window;

use proptest::prelude::*;

use super::*;
use crate::registry::{Column, ColumnType, Registry, TableSchema};

// Columns: 0 id int8, 1 grp text, 2 qty int4, 3 amount numeric, 4 score float8, 5 label text,
// 6 big int8, 7 small float4, 8 opened timestamptz, 9 closed timestamptz, 10 local timestamp.
pub(super) fn schema() -> TableSchema {
    let reg = Registry::default();
    let id = reg.add("s".into(), "public", "t", "t", vec![], vec![]).expect("register");
    let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
    TableSchema {
        spec: reg.get(id).expect("spec").clone(),
        columns: vec![
            col("id", ColumnType::Int8),
            col("grp", ColumnType::Text),
            col("qty", ColumnType::Int4),
            col("amount", ColumnType::Numeric),
            col("score", ColumnType::Float8),
            col("label", ColumnType::Text),
            col("big", ColumnType::Int8),
            col("small", ColumnType::Float4),
            col("opened", ColumnType::TimestampTz),
            col("closed", ColumnType::TimestampTz),
            col("local", ColumnType::Timestamp),
        ],
        key: vec![0],
        indexed: vec![],
        version: 1,
    }
}

/// Every function on every column it applies to.
fn every_measure() -> Vec<(AggFn, Input)> {
    let mut measures = Vec::new();
    for column in 1..11 {
        for f in AggFn::ALL {
            if result_type(f, &schema().columns[column].ty).is_some() {
                measures.push((f, Input::Column(column)));
            }
        }
    }
    measures
}

/// Every function on every difference and age the schema allows.
pub(super) fn every_derived_measure() -> Vec<(AggFn, Input)> {
    let inputs = [
        Input::Diff { later: 9, earlier: 8 },
        Input::Diff { later: 10, earlier: 10 },
        Input::Diff { later: 3, earlier: 2 },
        Input::Diff { later: 2, earlier: 6 },
        Input::Diff { later: 4, earlier: 7 },
        Input::Diff { later: 7, earlier: 7 },
        Input::Age(8),
        Input::Age(10),
    ];
    inputs.iter().flat_map(|input| AggFn::ALL.map(|f| (f, input.clone()))).collect()
}

/// Measures of plain columns.
fn columns(measures: &[(AggFn, usize)]) -> Vec<(AggFn, Input)> {
    measures.iter().map(|&(f, c)| (f, Input::Column(c))).collect()
}

pub(super) fn n(s: &str) -> Value {
    Value::Numeric(s.into())
}

pub(super) fn value_row() -> impl Strategy<Value = Vec<Value>> {
    fn nullable<T: std::fmt::Debug>(s: impl Strategy<Value = T>, f: fn(T) -> Value) -> impl Strategy<Value = Value> {
        prop_oneof![1 => Just(Value::Null), 5 => s.prop_map(f)]
    }
    (
        nullable(prop::sample::select(vec!["a", "b", "c"]), Value::text),
        nullable(any::<i32>(), Value::Int4),
        nullable(
            prop_oneof![
                (any::<i64>(), 0u32..6).prop_map(|(m, s)| {
                    let digits = m.unsigned_abs().to_string();
                    let s = s as usize;
                    let sign = if m < 0 { "-" } else { "" };
                    if s == 0 || digits.len() <= s {
                        format!("{sign}{digits}")
                    } else {
                        format!("{sign}{}.{}", &digits[..digits.len() - s], &digits[digits.len() - s..])
                    }
                }),
                prop::sample::select(vec!["NaN".to_string(), "Infinity".to_string(), "-Infinity".to_string()]),
            ],
            |s| Value::Numeric(s.into()),
        ),
        nullable(
            prop_oneof![any::<f64>(), prop::sample::select(vec![0.1, -0.0, 1e300, -1e300, 5e-324])],
            Value::Float8,
        ),
        nullable(".{0,3}", |s: String| Value::text(&s)),
        nullable(any::<i64>(), Value::Int8),
        nullable(any::<f32>(), Value::Float4),
        (
            nullable(timestamp(), Value::TimestampTz),
            nullable(timestamp(), Value::TimestampTz),
            nullable(timestamp(), Value::Timestamp),
        ),
    )
        .prop_map(|(g, q, a, f, l, b, s, (o, c, t))| vec![Value::Null, g, q, a, f, l, b, s, o, c, t])
}

/// Microseconds around 2024, often repeated, sometimes infinite.
pub(super) fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => (0i64..2_000).prop_map(|k| T0 + k * 997_000_001),
        2 => prop::sample::select(vec![T0, T0 + 1, T0 - 1_000_000]),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX]),
    ]
}

/// 2024-03-30T12:00:00Z, a day before Berlin's clocks sprang forward.
pub(super) const T0: i64 = 1_711_800_000_000_000;

/// A script of row arrivals and departures: `Some(row)` adds, `None` removes the row added
/// `k`-th among those still present.
pub(super) fn script() -> impl Strategy<Value = Vec<(Option<Vec<Value>>, usize)>> {
    prop::collection::vec((prop::option::weighted(0.7, value_row()), any::<usize>()), 0..80)
}

pub(super) fn run(spec: &AggregateSpec, script: &[(Option<Vec<Value>>, usize)]) -> (Aggregate, Vec<Vec<Value>>) {
    let mut live = Aggregate::new(spec.clone(), &schema()).expect("valid spec");
    let mut present: Vec<Vec<Value>> = Vec::new();
    for (step, pick) in script {
        match step {
            Some(row) => {
                live.add(row);
                present.push(row.clone());
            }
            None if !present.is_empty() => {
                let row = present.remove(pick % present.len());
                live.remove(&row);
            }
            None => {}
        }
    }
    (live, present)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_from_scratch(script in script(), grouped in any::<bool>()) {
        let spec = AggregateSpec { group_by: if grouped { vec![1] } else { vec![] }, measures: every_measure() };
        let (live, present) = run(&spec, &script);
        let mut scratch = Aggregate::new(spec.clone(), &schema()).expect("valid spec");
        for row in present.iter().rev() {
            scratch.add(row);
        }
        prop_assert_eq!(live.groups(), scratch.groups());
        prop_assert_eq!(live.rows(), present.len() as u64);
    }

    #[test]
    fn differences_and_ages_incremental_equal_from_scratch(script in script(), grouped in any::<bool>(), now in timestamp()) {
        let spec = AggregateSpec { group_by: if grouped { vec![1] } else { vec![] }, measures: every_derived_measure() };
        let (live, present) = run(&spec, &script);
        let mut scratch = Aggregate::new(spec.clone(), &schema()).expect("valid spec");
        for row in present.iter().rev() {
            scratch.add(row);
        }
        prop_assert_eq!(live.groups_at(now), scratch.groups_at(now));
    }

    #[test]
    fn integer_and_extreme_measures_equal_a_plain_computation(script in script()) {
        let spec = AggregateSpec {
            group_by: vec![],
            measures: columns(&[(AggFn::Sum, 2), (AggFn::Min, 5), (AggFn::Max, 5), (AggFn::Count, 3), (AggFn::Sum, 6)]),
        };
        let (live, present) = run(&spec, &script);
        let ints: Vec<i64> = present.iter().filter_map(|r| if let Value::Int4(v) = r[2] { Some(v.into()) } else { None }).collect();
        let labels: Vec<&Value> = present.iter().map(|r| &r[5]).filter(|v| !v.is_null()).collect();
        let bigs: Vec<i128> = present.iter().filter_map(|r| if let Value::Int8(v) = r[6] { Some(v.into()) } else { None }).collect();
        let want = vec![
            if ints.is_empty() { Value::Null } else { Value::Int8(ints.iter().sum()) },
            labels.iter().min().map_or(Value::Null, |v| (*v).clone()),
            labels.iter().max().map_or(Value::Null, |v| (*v).clone()),
            Value::Int8(present.iter().filter(|r| !r[3].is_null()).count() as i64),
            if bigs.is_empty() { Value::Null } else { n(&bigs.iter().sum::<i128>().to_string()) },
        ];
        let got = live.groups();
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(&got[0].values, &want);
        prop_assert_eq!(got[0].count, present.len() as u64);
    }
}

#[test]
fn result_types_follow_postgres() {
    use ColumnType as T;
    assert_eq!(result_type(AggFn::Sum, &T::Int4), Some(T::Int8));
    assert_eq!(result_type(AggFn::Sum, &T::Int8), Some(T::Numeric));
    assert_eq!(result_type(AggFn::Sum, &T::Float4), Some(T::Float4));
    assert_eq!(result_type(AggFn::Avg, &T::Int2), Some(T::Numeric));
    assert_eq!(result_type(AggFn::Avg, &T::Float4), Some(T::Float8));
    assert_eq!(result_type(AggFn::Max, &T::TimestampTz), Some(T::TimestampTz));
    assert_eq!(result_type(AggFn::Count, &T::Json), Some(T::Int8));
    assert_eq!(result_type(AggFn::Sum, &T::Text), None);
    assert_eq!(result_type(AggFn::Min, &T::Bool), None);
    assert_eq!(result_type(AggFn::P90, &T::Interval), Some(T::Interval));
    assert_eq!(result_type(AggFn::P50, &T::Text), Some(T::Text));
    assert_eq!(result_type(AggFn::P99, &T::Bool), None);
    assert_eq!(result_type(AggFn::CountDistinct, &T::Uuid), Some(T::Int8));
    assert_eq!(result_type(AggFn::CountDistinct, &T::Json), None);
    let refused = |measures: Vec<(AggFn, Input)>| {
        Aggregate::new(AggregateSpec { group_by: vec![], measures }, &schema()).err().map(|e| e.to_string())
    };
    assert_eq!(
        refused(vec![(AggFn::Sum, Input::Column(1))]).as_deref(),
        Some("sum is not defined for column `grp` of type text")
    );
    assert_eq!(
        refused(vec![(AggFn::Avg, Input::Column(5))]).as_deref(),
        Some("avg is not defined for column `label` of type text")
    );
    assert_eq!(
        refused(vec![(AggFn::Max, Input::Age(2))]).as_deref(),
        Some("the age of column `qty` is not defined: it is of type int4, not timestamp or timestamptz")
    );
    let mismatch = refused(vec![(AggFn::Sum, Input::Diff { later: 8, earlier: 10 })]).unwrap_or_default();
    assert!(mismatch.starts_with("`opened` (timestamp_tz) - `local` (timestamp) is not defined"), "{mismatch}");
    assert!(refused(vec![(AggFn::Sum, Input::Diff { later: 4, earlier: 2 })]).is_some(), "float - int");
    assert!(refused(vec![(AggFn::Sum, Input::Diff { later: 1, earlier: 5 })]).is_some(), "text - text");
    assert_eq!(refused(vec![(AggFn::Count, Input::Column(42))]).as_deref(), Some("table `t` has no column number 42"));
    // Every function is defined on every difference and age the schema allows.
    assert_eq!(refused(every_derived_measure()), None);
}

#[test]
fn empty_input_gives_one_row_without_group_by_and_none_with_it() {
    let s = schema();
    let ungrouped = Aggregate::new(
        AggregateSpec { group_by: vec![], measures: columns(&[(AggFn::Sum, 2), (AggFn::Count, 2)]) },
        &s,
    )
    .expect("valid");
    assert_eq!(
        ungrouped.groups(),
        vec![GroupResult { key: vec![], count: 0, values: vec![Value::Null, Value::Int8(0)] }]
    );
    let grouped =
        Aggregate::new(AggregateSpec { group_by: vec![1], measures: columns(&[(AggFn::Sum, 2)]) }, &s).expect("valid");
    assert!(grouped.groups().is_empty());
}

#[test]
fn null_is_a_group_and_groups_vanish_with_their_last_row() {
    let s = schema();
    let mut a =
        Aggregate::new(AggregateSpec { group_by: vec![1], measures: columns(&[(AggFn::Avg, 2), (AggFn::Max, 3)]) }, &s)
            .expect("valid");
    let row = |g: Value, q: i32, amount: &str| vec![Value::Int8(0), g, Value::Int4(q), n(amount)];
    a.add(&row(Value::Null, 1, "1.5"));
    a.add(&row(Value::Null, 2, "10"));
    a.add(&row(Value::text("x"), 5, "2"));
    let groups = a.groups();
    assert_eq!(groups[0].key, vec![Value::Null]);
    assert_eq!(groups[0].values, vec![n("1.5000000000000000"), n("10")]);
    a.remove(&row(Value::Null, 2, "10"));
    assert_eq!(a.group(&[Value::Null]).map(|g| g.values), Some(vec![n("1.00000000000000000000"), n("1.5")]));
    a.remove(&row(Value::Null, 1, "1.5"));
    assert_eq!(a.groups().len(), 1);
    assert_eq!(a.group(&[Value::Null]), None);
}

#[test]
fn max_is_revealed_again_after_the_current_one_leaves() {
    let s = schema();
    let mut a =
        Aggregate::new(AggregateSpec { group_by: vec![], measures: columns(&[(AggFn::Max, 4), (AggFn::Min, 4)]) }, &s)
            .expect("valid");
    let row = |x: f64| vec![Value::Int8(0), Value::Null, Value::Null, Value::Null, Value::Float8(x)];
    for x in [1.0, 3.0, 3.0, f64::NAN, -2.0] {
        a.add(&row(x));
    }
    let maxmin = |a: &Aggregate| a.groups()[0].values.clone();
    assert_eq!(maxmin(&a), vec![Value::Float8(f64::NAN), Value::Float8(-2.0)]);
    a.remove(&row(f64::NAN));
    a.remove(&row(3.0));
    assert_eq!(maxmin(&a), vec![Value::Float8(3.0), Value::Float8(-2.0)]);
    a.remove(&row(3.0));
    a.remove(&row(-2.0));
    assert_eq!(maxmin(&a), vec![Value::Float8(1.0), Value::Float8(1.0)]);
}
