//! The KPI engine: every defined KPI kept exact at every applied transaction.
//!
//! Pure: no I/O, no async. Each KPI is an incremental aggregate ([`crate::aggregate`], the same
//! engine as GraphQL `…Aggregate`) over the rows of its table that pass its filter; a row
//! delta removes the row's old contribution and adds the new one, so a transaction costs one
//! group lookup per touched KPI, never a scan. Table-level events (snapshot, truncate, resync,
//! schema change) rebuild the KPIs of that table from the replica, or mark them not ready.

use std::collections::HashMap;

use super::compile::{CompiledKpi, Reading};
use crate::aggregate::{Aggregate, GroupResult, aggregate_table};
use crate::live::not_ready;
use crate::replica::{Applied, Delta, Replica};
use crate::value::Value;

/// A KPI's id: its row in the app database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct KpiId(pub i64);

/// One group's value (an ungrouped KPI has one group with an empty key).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupValue {
    pub key: Vec<Value>,
    pub value: Value,
}

/// A KPI's value: its groups, or why there is none right now.
#[derive(Clone, Debug, PartialEq)]
pub enum KpiValue {
    Groups(Vec<GroupValue>),
    /// The table is loading, resyncing or quarantined.
    NotReady(String),
}

impl KpiValue {
    /// The value of an ungrouped KPI (or the first group's).
    pub fn single(&self) -> Option<&Value> {
        match self {
            KpiValue::Groups(groups) => groups.first().map(|g| &g.value),
            KpiValue::NotReady(_) => None,
        }
    }
}

#[derive(Debug)]
enum State {
    Ready(Aggregate),
    Waiting(String),
}

#[derive(Debug)]
struct Entry {
    kpi: CompiledKpi,
    state: State,
    value: KpiValue,
}

/// Every KPI, indexed by table.
#[derive(Debug, Default)]
pub struct KpiSet {
    entries: HashMap<KpiId, Entry>,
    by_table: HashMap<crate::registry::TableId, Vec<KpiId>>,
}

impl KpiSet {
    pub fn new() -> KpiSet {
        KpiSet::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds (or replaces) a KPI and computes it from `replica`.
    pub fn insert(&mut self, id: KpiId, kpi: CompiledKpi, replica: &Replica) {
        self.remove(id);
        self.by_table.entry(kpi.table).or_default().push(id);
        let state = build(&kpi, replica);
        let value = read(&kpi, &state);
        self.entries.insert(id, Entry { kpi, state, value });
    }

    pub fn remove(&mut self, id: KpiId) {
        if let Some(entry) = self.entries.remove(&id)
            && let Some(ids) = self.by_table.get_mut(&entry.kpi.table)
        {
            ids.retain(|k| *k != id);
        }
    }

    pub fn value(&self, id: KpiId) -> Option<&KpiValue> {
        self.entries.get(&id).map(|e| &e.value)
    }

    pub fn compiled(&self, id: KpiId) -> Option<&CompiledKpi> {
        self.entries.get(&id).map(|e| &e.kpi)
    }

    /// Follows one applied event. Returns the KPIs whose value changed (at most once each),
    /// and those whose table changed shape (their definition must be bound again).
    pub fn apply(&mut self, applied: &Applied, replica: &Replica) -> Outcome {
        let mut touched: Vec<KpiId> = Vec::new();
        let mut rebuild: Vec<KpiId> = Vec::new();
        for delta in &applied.deltas {
            match delta {
                Delta::Row(d) => {
                    let Some(ids) = self.by_table.get(&d.table) else { continue };
                    for id in ids {
                        let entry = self.entries.get_mut(id).expect("indexed KPIs exist");
                        let State::Ready(aggregate) = &mut entry.state else { continue };
                        let filter = &entry.kpi.filter;
                        let before = d.before.as_ref().filter(|r| filter.matches(r));
                        let after = d.after.as_ref().filter(|r| filter.matches(r));
                        if before.is_none() && after.is_none() {
                            continue;
                        }
                        aggregate.apply(before.map(|r| &r[..]), after.map(|r| &r[..]));
                        touched.push(*id);
                    }
                }
                Delta::SnapshotBegin { schema } => rebuild.extend(self.of_table(schema.id())),
                Delta::SnapshotEnd { table, .. } | Delta::Reset { table, .. } | Delta::SchemaChanged { table, .. } => {
                    rebuild.extend(self.of_table(*table))
                }
                Delta::SnapshotRows { .. } | Delta::Consistent { .. } => {}
            }
        }
        rebuild.sort_unstable();
        rebuild.dedup();
        let mut reshaped = Vec::new();
        for id in &rebuild {
            let entry = self.entries.get_mut(id).expect("indexed KPIs exist");
            let same_shape =
                replica.table(entry.kpi.table).is_none_or(|t| t.schema.version == entry.kpi.schema.version);
            if same_shape {
                entry.state = build(&entry.kpi, replica);
                touched.push(*id);
            } else {
                entry.state = State::Waiting(format!("table `{}` changed its columns", entry.kpi.schema.spec.name));
                reshaped.push(*id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut changed = Vec::new();
        let all_touched = touched.clone();
        for id in touched {
            let entry = self.entries.get_mut(&id).expect("indexed KPIs exist");
            let value = read(&entry.kpi, &entry.state);
            if value != entry.value {
                entry.value = value;
                changed.push(id);
            }
        }
        Outcome { changed, reshaped, touched: all_touched }
    }

    fn of_table(&self, table: crate::registry::TableId) -> Vec<KpiId> {
        self.by_table.get(&table).cloned().unwrap_or_default()
    }
}

/// What one applied event did to the KPIs.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub changed: Vec<KpiId>,
    pub reshaped: Vec<KpiId>,
    /// The KPIs whose rows the event touched, changed value or not (a no-data rule's "data").
    pub touched: Vec<KpiId>,
}

fn build(kpi: &CompiledKpi, replica: &Replica) -> State {
    let table = replica.table(kpi.table);
    if let Some(reason) = not_ready(table, &kpi.schema.spec.name) {
        return State::Waiting(reason);
    }
    let table = table.expect("ready tables exist");
    match aggregate_table(table, &kpi.filter, kpi.spec.clone()) {
        Ok(a) => State::Ready(a),
        Err(e) => State::Waiting(e.to_string()),
    }
}

fn read(kpi: &CompiledKpi, state: &State) -> KpiValue {
    match state {
        State::Waiting(reason) => KpiValue::NotReady(reason.clone()),
        State::Ready(aggregate) => {
            KpiValue::Groups(aggregate.groups().into_iter().map(|g| group_value(kpi.reading, g)).collect())
        }
    }
}

fn group_value(reading: Reading, g: GroupResult) -> GroupValue {
    let value = match reading {
        Reading::Rows => Value::Int8(i64::try_from(g.count).unwrap_or(i64::MAX)),
        Reading::Measure => g.values.into_iter().next().unwrap_or(Value::Null),
    };
    GroupValue { key: g.key, value }
}
