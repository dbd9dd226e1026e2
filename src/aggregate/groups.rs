//! The incremental aggregate: groups keyed by their `GROUP BY` values, each with `count(*)` and
//! one accumulator per measure.
//!
//! Rows come in with [`Aggregate::add`] and go out with [`Aggregate::remove`] (an update is a
//! remove of the old row and an add of the new one); a group exists exactly while it has rows,
//! as in SQL. Nothing is ever recomputed from the rows: the cost of a change is one group
//! lookup and one step per measure.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::input::{Reader, spelled_alike};
use super::measure::{Accumulator, Kind, age_kind, age_result_type, checked_kind};
use super::{AggregateError, AggregateSpec, GroupResult};
use crate::query::{capabilities, type_label};
use crate::registry::{ColumnType, TableSchema};
use crate::value::Value;

#[derive(Clone, Debug)]
struct Group {
    count: u64,
    accumulators: Vec<Accumulator>,
}

impl Group {
    fn add(&mut self, row: &[Value], readers: &[Reader]) {
        self.count += 1;
        for (acc, reader) in self.accumulators.iter_mut().zip(readers) {
            acc.add(&reader.read(row));
        }
    }
}

static NULL: Value = Value::Null;

/// An incremental `SELECT group_by…, count(*), f(column)… GROUP BY group_by…` over one table.
#[derive(Clone, Debug)]
pub struct Aggregate {
    spec: AggregateSpec,
    readers: Vec<Reader>,
    kinds: Vec<Kind>,
    result_types: Vec<ColumnType>,
    /// Ordered by key (NULL first), so results come out in a stable order.
    groups: BTreeMap<Vec<Value>, Group>,
}

impl Aggregate {
    /// Checks the spec against the table's schema: columns exist, every input fits its columns
    /// (an age of a timestamp, a difference of two numbers or two timestamps), every measure
    /// exists for its input's type (no sum of text), and group-by columns can be compared for
    /// equality.
    pub fn new(spec: AggregateSpec, schema: &TableSchema) -> Result<Aggregate, AggregateError> {
        let column = |i: usize| {
            schema
                .columns
                .get(i)
                .ok_or_else(|| AggregateError::NoSuchColumn { table: schema.spec.name.to_string(), column: i })
        };
        for &g in &spec.group_by {
            let c = column(g)?;
            if !capabilities(&c.ty).equality {
                return Err(AggregateError::NotGroupable { column: c.name.to_string(), ty: type_label(&c.ty) });
            }
        }
        let mut readers = Vec::with_capacity(spec.measures.len());
        let mut kinds = Vec::with_capacity(spec.measures.len());
        let mut result_types = Vec::with_capacity(spec.measures.len());
        for (f, input) in &spec.measures {
            let reader = Reader::new(input, schema)?;
            if reader.is_age() {
                kinds.push(age_kind(*f));
                result_types.push(age_result_type(*f));
            } else {
                kinds.push(checked_kind(*f, &reader.ty, &reader.label)?);
                result_types.push(super::result_type(*f, &reader.ty).unwrap_or(ColumnType::Int8));
            }
            readers.push(reader);
        }
        Ok(Aggregate { spec, readers, kinds, result_types, groups: BTreeMap::new() })
    }

    pub fn spec(&self) -> &AggregateSpec {
        &self.spec
    }

    /// The type of each measure's value, in the spec's order.
    pub fn result_types(&self) -> &[ColumnType] {
        &self.result_types
    }

    /// The group a row belongs to.
    pub fn group_key(&self, row: &[Value]) -> Vec<Value> {
        self.key_of(row).into_owned()
    }

    /// The group a row belongs to, borrowed from the row when it can be: no group column or
    /// one (the common cases) cost no allocation, so finding a row's group on every change
    /// copies nothing.
    pub fn key_of<'r>(&self, row: &'r [Value]) -> Cow<'r, [Value]> {
        match self.spec.group_by.as_slice() {
            [] => Cow::Borrowed(&[]),
            [i] => Cow::Borrowed(row.get(*i).map_or(std::slice::from_ref(&NULL), std::slice::from_ref)),
            columns => Cow::Owned(columns.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()),
        }
    }

    /// Whether a measure reads an age, which needs a `now` to be read.
    pub fn reads_age(&self) -> bool {
        self.readers.iter().any(Reader::is_age)
    }

    pub fn add(&mut self, row: &[Value]) {
        let key = self.key_of(row);
        if let Some(group) = self.groups.get_mut(key.as_ref()) {
            group.add(row, &self.readers);
            return;
        }
        let mut group = Group { count: 0, accumulators: self.kinds.iter().map(|&k| Accumulator::new(k)).collect() };
        group.add(row, &self.readers);
        let key = key.into_owned();
        self.groups.insert(key, group);
    }

    /// Takes a row added before back out. A row that was never added is ignored (its group may
    /// not exist); removing a row twice is the caller's bug and is not detected beyond that.
    pub fn remove(&mut self, row: &[Value]) {
        let key = self.key_of(row);
        let Some(group) = self.groups.get_mut(key.as_ref()) else { return };
        group.count -= 1;
        if group.count == 0 {
            self.groups.remove(key.as_ref());
            return;
        }
        for (acc, reader) in group.accumulators.iter_mut().zip(&self.readers) {
            acc.remove(&reader.read(row));
        }
    }

    /// Whether replacing `before` by `after` leaves every group as it is: the same group (its
    /// key spelled the same) and the same input to every measure. An update that touches
    /// other columns (an order's status, for a KPI of totals) then costs no step of any
    /// measure — a percentile's or a minimum's ordered structure is not searched twice for
    /// nothing.
    pub fn unmoved_by(&self, before: &[Value], after: &[Value]) -> bool {
        self.spec.group_by.iter().all(|&i| spelled_alike(before, after, i))
            && self.readers.iter().all(|r| r.reads_alike(before, after))
    }

    /// Applies one row change: `before` (a row added before) leaves, `after` enters (either
    /// may be absent).
    pub fn apply(&mut self, before: Option<&[Value]>, after: Option<&[Value]>) {
        if let (Some(b), Some(a)) = (before, after)
            && self.unmoved_by(b, a)
        {
            return;
        }
        if let Some(row) = before {
            self.remove(row);
        }
        if let Some(row) = after {
            self.add(row);
        }
    }

    /// Forgets every row (a table reset).
    pub fn clear(&mut self) {
        self.groups.clear();
    }

    /// Rows currently counted, over all groups.
    pub fn rows(&self) -> u64 {
        self.groups.values().map(|g| g.count).sum()
    }

    fn result(&self, key: &[Value], group: Option<&Group>, now: Option<i64>) -> GroupResult {
        let values = self
            .kinds
            .iter()
            .enumerate()
            .map(|(m, &kind)| match group {
                Some(g) => g.accumulators[m].value(kind, now),
                None => Accumulator::new(kind).value(kind, now),
            })
            .collect();
        GroupResult { key: key.to_vec(), count: group.map_or(0, |g| g.count), values }
    }

    fn results(&self, now: Option<i64>) -> Vec<GroupResult> {
        if self.spec.group_by.is_empty() && self.groups.is_empty() {
            return vec![self.result(&[], None, now)];
        }
        self.groups.iter().map(|(key, group)| self.result(key, Some(group), now)).collect()
    }

    /// One result per group, ordered by key (NULL first). Without `group_by` there is always
    /// exactly one result, with count 0 and NULL measures over no rows — as SQL answers
    /// `SELECT count(*), sum(x) FROM t WHERE false`. Measures of ages are NULL here: they
    /// need a `now`, see [`Aggregate::groups_at`].
    pub fn groups(&self) -> Vec<GroupResult> {
        self.results(None)
    }

    /// [`Aggregate::groups`] with ages evaluated at `now_micros` (microseconds since the Unix
    /// epoch), as `extract(epoch from now - column)` with that `now`.
    pub fn groups_at(&self, now_micros: i64) -> Vec<GroupResult> {
        self.results(Some(now_micros))
    }

    fn group_result(&self, key: &[Value], now: Option<i64>) -> Option<GroupResult> {
        match self.groups.get(key) {
            Some(group) => Some(self.result(key, Some(group), now)),
            None if self.spec.group_by.is_empty() => Some(self.result(&[], None, now)),
            None => None,
        }
    }

    /// The result of one group, if it has rows (or, without `group_by`, always).
    pub fn group(&self, key: &[Value]) -> Option<GroupResult> {
        self.group_result(key, None)
    }

    /// [`Aggregate::group`] with ages evaluated at `now_micros`.
    pub fn group_at(&self, key: &[Value], now_micros: i64) -> Option<GroupResult> {
        self.group_result(key, Some(now_micros))
    }
}
