//! The incremental aggregate: groups keyed by their `GROUP BY` values, each with `count(*)` and
//! one accumulator per measure.
//!
//! Rows come in with [`Aggregate::add`] and go out with [`Aggregate::remove`] (an update is a
//! remove of the old row and an add of the new one); a group exists exactly while it has rows,
//! as in SQL. Nothing is ever recomputed from the rows: the cost of a change is one group
//! lookup and one step per measure.

use std::collections::BTreeMap;

use super::measure::{Accumulator, Kind, checked_kind};
use super::{AggregateError, AggregateSpec, GroupResult};
use crate::query::{capabilities, type_label};
use crate::registry::{ColumnType, TableSchema};
use crate::value::Value;

#[derive(Clone, Debug)]
struct Group {
    count: u64,
    accumulators: Vec<Accumulator>,
}

/// An incremental `SELECT group_by…, count(*), f(column)… GROUP BY group_by…` over one table.
#[derive(Clone, Debug)]
pub struct Aggregate {
    spec: AggregateSpec,
    kinds: Vec<Kind>,
    result_types: Vec<ColumnType>,
    /// Ordered by key (NULL first), so results come out in a stable order.
    groups: BTreeMap<Vec<Value>, Group>,
}

impl Aggregate {
    /// Checks the spec against the table's schema: columns exist, every measure exists for its
    /// column's type (no sum of text), and group-by columns can be compared for equality.
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
        let mut kinds = Vec::with_capacity(spec.measures.len());
        let mut result_types = Vec::with_capacity(spec.measures.len());
        for &(f, i) in &spec.measures {
            let c = column(i)?;
            kinds.push(checked_kind(f, c)?);
            result_types.push(super::result_type(f, &c.ty).unwrap_or(ColumnType::Int8));
        }
        Ok(Aggregate { spec, kinds, result_types, groups: BTreeMap::new() })
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
        self.spec.group_by.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()
    }

    fn measure_value<'a>(&self, row: &'a [Value], measure: usize) -> &'a Value {
        const NULL: &Value = &Value::Null;
        self.spec.measures.get(measure).and_then(|&(_, i)| row.get(i)).unwrap_or(NULL)
    }

    pub fn add(&mut self, row: &[Value]) {
        let key = self.group_key(row);
        let values: Vec<&Value> = (0..self.kinds.len()).map(|m| self.measure_value(row, m)).collect();
        let kinds = &self.kinds;
        let group = self
            .groups
            .entry(key)
            .or_insert_with(|| Group { count: 0, accumulators: kinds.iter().map(|&k| Accumulator::new(k)).collect() });
        group.count += 1;
        for (acc, value) in group.accumulators.iter_mut().zip(values) {
            acc.add(value);
        }
    }

    /// Takes a row added before back out. A row that was never added is ignored (its group may
    /// not exist); removing a row twice is the caller's bug and is not detected beyond that.
    pub fn remove(&mut self, row: &[Value]) {
        let key = self.group_key(row);
        let values: Vec<&Value> = (0..self.kinds.len()).map(|m| self.measure_value(row, m)).collect();
        let Some(group) = self.groups.get_mut(&key) else { return };
        group.count -= 1;
        if group.count == 0 {
            self.groups.remove(&key);
            return;
        }
        for (acc, value) in group.accumulators.iter_mut().zip(values) {
            acc.remove(value);
        }
    }

    /// Applies one row change: `before` leaves, `after` enters (either may be absent).
    pub fn apply(&mut self, before: Option<&[Value]>, after: Option<&[Value]>) {
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

    fn result(&self, key: &[Value], group: Option<&Group>) -> GroupResult {
        let values = self
            .kinds
            .iter()
            .enumerate()
            .map(|(m, &kind)| match group {
                Some(g) => g.accumulators[m].value(kind),
                None => Accumulator::new(kind).value(kind),
            })
            .collect();
        GroupResult { key: key.to_vec(), count: group.map_or(0, |g| g.count), values }
    }

    /// One result per group, ordered by key (NULL first). Without `group_by` there is always
    /// exactly one result, with count 0 and NULL measures over no rows — as SQL answers
    /// `SELECT count(*), sum(x) FROM t WHERE false`.
    pub fn groups(&self) -> Vec<GroupResult> {
        if self.spec.group_by.is_empty() && self.groups.is_empty() {
            return vec![self.result(&[], None)];
        }
        self.groups.iter().map(|(key, group)| self.result(key, Some(group))).collect()
    }

    /// The result of one group, if it has rows (or, without `group_by`, always).
    pub fn group(&self, key: &[Value]) -> Option<GroupResult> {
        match self.groups.get(key) {
            Some(group) => Some(self.result(key, Some(group))),
            None if self.spec.group_by.is_empty() => Some(self.result(&[], None)),
            None => None,
        }
    }
}
