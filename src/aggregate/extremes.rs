//! The ordered multiset behind `min` and `max`: removing the current minimum must reveal the
//! next one, so every value is kept with how many rows hold it.
//!
//! Values that compare equal can still print differently: numeric `1.5` and `1.50`, float
//! `0` and `-0`. PostgreSQL's `min`/`max` return the last of such equals it scanned. Each
//! class of equal values therefore keeps its spellings in arrival order and answers with the
//! latest one still held — never a spelling that no current row has, and, for rows that
//! arrived in the table's scan order (a snapshot), the same one PostgreSQL returns.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::value::Value;

#[derive(Clone, Debug, Default)]
pub(crate) struct Extremes {
    classes: BTreeMap<Value, Class>,
}

/// One class of equal values.
#[derive(Clone, Debug)]
enum Class {
    /// Every row holds the map key's own spelling (the usual case: no allocation).
    One(u64),
    /// Distinct spellings with how many rows hold each, oldest first.
    Many(Vec<(Value, u64)>),
}

impl Extremes {
    pub(crate) fn add(&mut self, value: &Value) {
        let mut entry = match self.classes.entry(value.clone()) {
            Entry::Vacant(vacant) => {
                vacant.insert(Class::One(1));
                return;
            }
            Entry::Occupied(occupied) => occupied,
        };
        let key = entry.key().clone();
        let class = entry.get_mut();
        match class {
            Class::One(n) if key.same_spelling(value) => *n += 1,
            Class::One(n) => *class = Class::Many(vec![(key, *n), (value.clone(), 1)]),
            Class::Many(spellings) => match spellings.iter().position(|(s, _)| s.same_spelling(value)) {
                Some(i) => {
                    // The latest arrival goes last, as the last one scanned would.
                    let (spelling, n) = spellings.remove(i);
                    spellings.push((spelling, n + 1));
                }
                None => spellings.push((value.clone(), 1)),
            },
        }
    }

    pub(crate) fn remove(&mut self, value: &Value) {
        let Some(class) = self.classes.get_mut(value) else { return };
        let empty = match class {
            Class::One(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            Class::Many(spellings) => {
                if let Some(i) = spellings.iter().position(|(s, _)| s.same_spelling(value)) {
                    spellings[i].1 -= 1;
                    if spellings[i].1 == 0 {
                        spellings.remove(i);
                    }
                }
                spellings.is_empty()
            }
        };
        if empty {
            self.classes.remove(value);
        }
    }

    fn spelling<'a>(key: &'a Value, class: &'a Class) -> &'a Value {
        match class {
            Class::One(_) => key,
            Class::Many(spellings) => spellings.last().map_or(key, |(v, _)| v),
        }
    }

    pub(crate) fn min(&self) -> Value {
        self.classes.first_key_value().map_or(Value::Null, |(k, c)| Self::spelling(k, c).clone())
    }

    pub(crate) fn max(&self) -> Value {
        self.classes.last_key_value().map_or(Value::Null, |(k, c)| Self::spelling(k, c).clone())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn n(s: &str) -> Value {
        Value::Numeric(s.into())
    }

    fn text(v: &Value) -> String {
        v.to_canonical_string()
    }

    #[test]
    fn answers_with_a_spelling_a_current_row_has() {
        let mut e = Extremes::default();
        e.add(&n("0.0"));
        e.add(&n("0"));
        e.add(&n("3"));
        assert_eq!(text(&e.min()), "0");
        e.remove(&n("0"));
        assert_eq!(text(&e.min()), "0.0");
        e.add(&n("0.00"));
        e.add(&n("0.0"));
        assert_eq!(text(&e.min()), "0.0");
        e.remove(&n("0.0"));
        e.remove(&n("0.0"));
        assert_eq!(text(&e.min()), "0.00");
        e.remove(&n("0.00"));
        assert_eq!(text(&e.min()), "3");
        assert_eq!(text(&e.max()), "3");
        e.remove(&n("3"));
        assert_eq!(e.min(), Value::Null);
        assert!(e.classes.is_empty());
        // A class with one spelling again after the others left still answers correctly.
        e.add(&n("7.0"));
        e.add(&n("7"));
        e.remove(&n("7"));
        e.add(&n("7.0"));
        assert_eq!(text(&e.max()), "7.0");
    }

    #[test]
    fn negative_zero_is_its_own_spelling() {
        let mut e = Extremes::default();
        e.add(&Value::Float8(0.0));
        e.add(&Value::Float8(-0.0));
        assert!(matches!(e.max(), Value::Float8(x) if x.is_sign_negative()));
        e.remove(&Value::Float8(-0.0));
        assert!(matches!(e.max(), Value::Float8(x) if x.is_sign_positive()));
    }
}
