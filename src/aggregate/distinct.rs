//! The multiset behind `count(DISTINCT x)`: every value with how many rows hold it, so that
//! removing a row takes a value out only when its last holder leaves.
//!
//! Values are equal as PostgreSQL's equality says ([`Value`]'s `Eq` and `Hash` agree with it):
//! numeric `1.5` and `1.50` are one value, float `0` and `-0` too, and NaN equals NaN.

use foldhash::HashMap;

use crate::value::Value;

#[derive(Clone, Debug, Default)]
pub(crate) struct Distinct {
    counts: HashMap<Value, u64>,
}

impl Distinct {
    pub(crate) fn add(&mut self, value: &Value) {
        *self.counts.entry(value.clone()).or_default() += 1;
    }

    pub(crate) fn remove(&mut self, value: &Value) {
        if let Some(n) = self.counts.get_mut(value) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(value);
            }
        }
    }

    /// How many distinct values are held.
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn equal_values_count_once_until_their_last_holder_leaves() {
        let n = |s: &str| Value::Numeric(s.into());
        let mut d = Distinct::default();
        for v in [n("1.5"), n("1.50"), n("2"), Value::Float8(0.0)] {
            d.add(&v);
        }
        assert_eq!(d.len(), 3);
        d.remove(&n("1.5"));
        assert_eq!(d.len(), 3);
        d.remove(&n("1.50"));
        assert_eq!(d.len(), 2);
        d.add(&Value::Float8(-0.0));
        assert_eq!(d.len(), 2);
        d.add(&Value::Float8(f64::NAN));
        d.add(&Value::Float8(f64::NAN));
        d.remove(&Value::Float8(f64::NAN));
        assert_eq!(d.len(), 3);
    }
}
