//! A client's copy of its live result, as the set of row keys it holds, kept only to tell which
//! rows each message brought in.
//!
//! A delivery is a row *entering* a subscriber's result: in the full form every message repeats
//! the whole result, so the new rows are the keys not held before; in the patch form they are the
//! upserts whose key was not held (an upsert of a held key is a change of that row). Keeping the
//! set also checks the patches: a removal of a key the client never had, or a result that grows
//! past its limit, means a patch was lost or misapplied on the way.

/// The keys of one subscriber's current result.
#[derive(Debug, Default)]
pub struct Mirror {
    /// Sorted, so a whole result of up to a few hundred keys is compared by one merge instead of
    /// hashing every key of every message.
    keys: Vec<i64>,
    limit: usize,
    /// Removals of keys that were not held, and results longer than the limit.
    pub inconsistencies: u64,
}

/// What one message did to the result.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entered {
    /// Keys that were not in the result before this message.
    pub new: Vec<i64>,
    /// Upserted keys already held: changed rows.
    pub changed: Vec<i64>,
}

impl Mirror {
    pub fn new(limit: usize) -> Mirror {
        Mirror { keys: Vec::with_capacity(limit.min(1024)), limit, inconsistencies: 0 }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The result is replaced by `keys` (a full-form message or a reset).
    pub fn replace(&mut self, mut keys: Vec<i64>) -> Entered {
        keys.sort_unstable();
        let mut new = Vec::new();
        let (mut i, mut j) = (0, 0);
        while j < keys.len() {
            if i < self.keys.len() && self.keys[i] < keys[j] {
                i += 1;
            } else if i < self.keys.len() && self.keys[i] == keys[j] {
                i += 1;
                j += 1;
            } else {
                new.push(keys[j]);
                j += 1;
            }
        }
        self.keys = keys;
        self.check_limit();
        Entered { new, changed: Vec::new() }
    }

    /// A patch: `removed` keys leave, then `upserts` enter or change.
    pub fn patch(&mut self, upserts: &[i64], removed: &[i64]) -> Entered {
        for key in removed {
            match self.keys.binary_search(key) {
                Ok(at) => {
                    self.keys.remove(at);
                }
                Err(_) => self.inconsistencies += 1,
            }
        }
        let mut entered = Entered::default();
        for &key in upserts {
            match self.keys.binary_search(&key) {
                Ok(_) => entered.changed.push(key),
                Err(at) => {
                    self.keys.insert(at, key);
                    entered.new.push(key);
                }
            }
        }
        self.check_limit();
        entered
    }

    fn check_limit(&mut self) {
        if self.keys.len() > self.limit {
            self.inconsistencies += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_results_bring_in_the_keys_not_held() {
        let mut m = Mirror::new(3);
        assert_eq!(m.replace(vec![3, 1, 2]).new, vec![1, 2, 3], "the first result is all new");
        assert_eq!(m.replace(vec![9, 3, 2]).new, vec![9]);
        assert_eq!(m.replace(vec![9, 3, 2]).new, Vec::<i64>::new());
        assert_eq!(m.replace(vec![10, 11, 1]).new, vec![1, 10, 11], "a key may come back");
        assert_eq!(m.replace(vec![]).new, Vec::<i64>::new());
        assert!(m.is_empty());
        assert_eq!(m.inconsistencies, 0);
    }

    #[test]
    fn patches_enter_change_and_remove() {
        let mut m = Mirror::new(3);
        m.replace(vec![1, 2, 3]);
        let e = m.patch(&[4], &[1]);
        assert_eq!(e, Entered { new: vec![4], changed: vec![] });
        let e = m.patch(&[2, 5], &[3]);
        assert_eq!(e, Entered { new: vec![5], changed: vec![2] });
        assert_eq!(m.len(), 3);
        assert_eq!(m.inconsistencies, 0);
    }

    #[test]
    fn lost_patches_show_as_inconsistencies() {
        let mut m = Mirror::new(2);
        m.replace(vec![1, 2]);
        m.patch(&[], &[7]);
        assert_eq!(m.inconsistencies, 1, "removing a key never held");
        m.patch(&[3], &[]);
        assert_eq!(m.inconsistencies, 2, "three keys in a result limited to two");
        m.replace(vec![1, 2, 3]);
        assert_eq!(m.inconsistencies, 3);
    }
}
