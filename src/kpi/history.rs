//! KPI history: every KPI's value rolled up per minute (last, min, max), for charts and
//! comparisons.
//!
//! Pure: values come in with the instant and source position they hold at; rollups of the
//! minutes touched since the last drain come out, to be merged into the app database. Merging
//! is idempotent (min of mins, max of maxes, the last of the higher position), so a
//! transaction delivered again after a restart changes nothing.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use foldhash::HashMap;

use super::engine::{GroupValue, KpiId, KpiValue};
use crate::alert::engine::as_f64;
use crate::value::Value;

pub const MINUTE: i64 = 60_000_000;

/// One KPI group's minute.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    pub kpi: KpiId,
    /// `""` for an ungrouped KPI, else the JSON of the group key.
    pub group: String,
    /// Start of the minute, µs since the Unix epoch.
    pub minute: i64,
    /// The exact text of the last value.
    pub last: String,
    pub last_value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// What orders `last` between two writers of the same minute: the source position of the
    /// value (a KPI reads one source), or 0 for a periodic sample.
    pub order: u64,
}

/// Minutes touched since the last drain, per KPI and minute, per group key.
///
/// Kept as values, not text: a group that moves on every transaction of a minute is serialised
/// once, when the minute is drained, rather than on each move (with a hundred KPIs that text was
/// most of the recorder's work).
#[derive(Debug, Default)]
pub struct Rollups {
    open: HashMap<(KpiId, i64), HashMap<Vec<Value>, Open>>,
}

/// One group's minute while it is open.
#[derive(Debug)]
struct Open {
    last: Arc<GroupValue>,
    min: Option<f64>,
    max: Option<f64>,
    order: u64,
}

impl Rollups {
    pub fn new() -> Rollups {
        Rollups::default()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Takes in a KPI's value as of `at` (µs) and source position `order`.
    pub fn observe(&mut self, kpi: KpiId, value: &KpiValue, at: i64, order: u64) {
        self.observe_since(kpi, None, value, at, order);
    }

    /// Takes in the groups of a KPI's value that a transaction moved: those not shared with
    /// `before`, the value it had. The groups it left alone took no new value (and have their
    /// point each minute from the sample of the whole board); a KPI of many groups changes
    /// one or two per transaction, and rolling up every group on each was a twentieth of the
    /// benchmark's CPU.
    pub fn observe_since(&mut self, kpi: KpiId, before: Option<&KpiValue>, value: &KpiValue, at: i64, order: u64) {
        let KpiValue::Groups(groups) = value else { return };
        let old: &[Arc<GroupValue>] = match before {
            Some(KpiValue::Groups(old)) => old,
            _ => &[],
        };
        // Both lists are ordered by key, and a group left alone is the same `Arc` in both: one
        // walk finds them, comparing keys only around the groups that moved.
        let mut j = 0;
        let moved = groups.iter().filter(|g| {
            while j < old.len() && !Arc::ptr_eq(&old[j], g) && old[j].key < g.key {
                j += 1;
            }
            let kept = j < old.len() && Arc::ptr_eq(&old[j], g);
            j += usize::from(kept);
            !kept
        });
        let mut moved = moved.peekable();
        if moved.peek().is_none() {
            return;
        }
        let minute = at.div_euclid(MINUTE) * MINUTE;
        let minutes = self.open.entry((kpi, minute)).or_default();
        for g in moved {
            let x = as_f64(&g.value);
            match minutes.get_mut(g.key.as_slice()) {
                Some(r) => {
                    if order >= r.order {
                        r.last = g.clone();
                        r.order = order;
                    }
                    if let Some(x) = x {
                        r.min = Some(r.min.map_or(x, |m| m.min(x)));
                        r.max = Some(r.max.map_or(x, |m| m.max(x)));
                    }
                }
                None => {
                    minutes.insert(g.key.clone(), Open { last: g.clone(), min: x, max: x, order });
                }
            }
        }
    }

    /// The rollups touched since the last drain, ordered by KPI, group and minute.
    pub fn drain(&mut self) -> Vec<Rollup> {
        let mut out = Vec::new();
        for ((kpi, minute), groups) in self.open.drain() {
            for (key, r) in groups {
                let group =
                    if key.is_empty() { String::new() } else { serde_json::to_string(&key).unwrap_or_default() };
                out.push(Rollup {
                    kpi,
                    group,
                    minute,
                    last: r.last.value.to_canonical_string(),
                    last_value: as_f64(&r.last.value),
                    min: r.min,
                    max: r.max,
                    order: r.order,
                });
            }
        }
        out.sort_by(|a, b| (a.kpi, &a.group, a.minute).cmp(&(b.kpi, &b.group, b.minute)));
        out
    }
}

/// `earlier` and `later` rollups as one list, each (KPI, group, minute) once, merged as the
/// database merges them (min of mins, max of maxes, the last of the higher position): a write
/// that failed goes again with the next, in one statement that may name each row once.
pub fn merged(earlier: Vec<Rollup>, later: Vec<Rollup>) -> Vec<Rollup> {
    let mut by_key: BTreeMap<(KpiId, String, i64), Rollup> = BTreeMap::new();
    for r in earlier.into_iter().chain(later) {
        match by_key.entry((r.kpi, r.group.clone(), r.minute)) {
            Entry::Vacant(v) => {
                v.insert(r);
            }
            Entry::Occupied(mut o) => {
                let mine = o.get_mut();
                if r.order >= mine.order {
                    mine.last = r.last;
                    mine.last_value = r.last_value;
                    mine.order = r.order;
                }
                mine.min = [mine.min, r.min].into_iter().flatten().reduce(f64::min);
                mine.max = [mine.max, r.max].into_iter().flatten().reduce(f64::max);
            }
        }
    }
    by_key.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: i64) -> KpiValue {
        KpiValue::Groups(Arc::new([Arc::new(GroupValue { key: vec![], value: Value::Int8(x) })]))
    }

    #[test]
    fn only_the_groups_a_transaction_moved_are_rolled_up() {
        let group = |k: &str, x: i64| Arc::new(GroupValue { key: vec![Value::Text(k.into())], value: Value::Int8(x) });
        let (a, b, c, d) = (group("a", 1), group("b", 2), group("c", 4), group("d", 5));
        let before = KpiValue::Groups(Arc::new([a.clone(), b, c, d.clone()]));
        // `b` moved, `bb` appeared, `c` went away; `a` and `d` were left alone.
        let after = KpiValue::Groups(Arc::new([a, group("b", 3), group("bb", 6), d]));
        let mut r = Rollups::new();
        r.observe_since(KpiId(1), Some(&before), &after, 5, 1);
        let mut rolled: Vec<(String, String)> = r.drain().into_iter().map(|r| (r.group, r.last)).collect();
        rolled.sort();
        assert_eq!(rolled, [("[\"b\"]".to_string(), "3".to_string()), ("[\"bb\"]".to_string(), "6".to_string())]);
        // Without a value before, every group is new.
        r.observe_since(KpiId(1), None, &after, 6, 2);
        assert_eq!(r.drain().len(), 4);
    }

    #[test]
    fn a_minute_keeps_last_min_and_max() {
        let mut r = Rollups::new();
        r.observe(KpiId(1), &v(5), 10 * MINUTE + 1, 10);
        r.observe(KpiId(1), &v(9), 10 * MINUTE + 2, 11);
        r.observe(KpiId(1), &v(2), 10 * MINUTE + 3, 12);
        r.observe(KpiId(1), &v(4), 11 * MINUTE, 13);
        let out = r.drain();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].last.as_str(), out[0].min, out[0].max), ("2", Some(2.0), Some(9.0)));
        assert_eq!((out[1].minute, out[1].last.as_str()), (11 * MINUTE, "4"));
        assert!(r.is_empty());
    }

    #[test]
    fn an_older_observation_does_not_replace_the_last() {
        let mut r = Rollups::new();
        r.observe(KpiId(1), &v(7), 5, 20);
        r.observe(KpiId(1), &v(3), 6, 19);
        let out = r.drain();
        assert_eq!((out[0].last.as_str(), out[0].min), ("7", Some(3.0)));
    }

    #[test]
    fn a_failed_drain_merged_with_the_next_merges_like_the_database() {
        let mut first = Rollups::new();
        first.observe(KpiId(1), &v(7), 5, 0);
        first.observe(KpiId(1), &v(2), 6, 0);
        let failed = first.drain();
        first.observe(KpiId(1), &v(4), 7, 0);
        first.observe(KpiId(2), &v(1), 7, 0);
        let out = merged(failed, first.drain());
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].last.as_str(), out[0].min, out[0].max), ("4", Some(2.0), Some(7.0)));
    }
}
