//! The ordered multiset behind `percentile_disc`: values kept sorted in blocks, so a row
//! arriving or leaving costs a binary search and a shift within one block, and the value at a
//! rank is found by walking the block lengths (O(n / block) steps, O(√n)-like in practice).
//!
//! An exact structure, not a sketch: `percentile_disc` returns one of the input values, and a
//! KPI must say the same as the SQL an analyst runs to check it. The rank rule is PostgreSQL's
//! (`percentile_disc_final` in `orderedsetaggs.c`): the row number is `ceil(fraction × count)`
//! computed in double precision, and a row number of 0 (fraction 0) takes the first row.
//!
//! Equal values may be spelled differently (numeric `1.5` and `1.50`); removal takes out the
//! spelling the leaving row had, so every spelling held belongs to a current row. Which of
//! several equal spellings sits at a rank is arrival order here; PostgreSQL's sort does not
//! define it either.

use crate::value::Value;

/// Values per block after a split; a block splits when it reaches twice this.
const BLOCK: usize = 256;

#[derive(Clone, Debug, Default)]
pub(crate) struct Ranked {
    /// Non-empty sorted blocks, each block's values no greater than the next block's.
    blocks: Vec<Vec<Value>>,
    len: usize,
}

/// The 0-based rank `percentile_disc(fraction)` picks among `count` sorted values
/// (`count` > 0).
pub(crate) fn disc_rank(fraction: f64, count: usize) -> usize {
    let row = (fraction * count as f64).ceil();
    // PostgreSQL: row numbers 0 and 1 both take the first row; the row number never exceeds
    // the count for a fraction in [0, 1].
    (row as usize).clamp(1, count) - 1
}

impl Ranked {
    pub(crate) fn insert(&mut self, value: &Value) {
        self.len += 1;
        if self.blocks.is_empty() {
            self.blocks.push(vec![value.clone()]);
            return;
        }
        // After its equals, as a later arrival; the last block takes anything larger.
        let b = self.blocks.partition_point(|block| block.last().is_some_and(|last| last <= value));
        let b = b.min(self.blocks.len() - 1);
        let block = &mut self.blocks[b];
        let i = block.partition_point(|v| v <= value);
        block.insert(i, value.clone());
        if block.len() >= 2 * BLOCK {
            let tail = block.split_off(BLOCK);
            self.blocks.insert(b + 1, tail);
        }
    }

    /// Takes out one value equal to `value`, of the same spelling when one is held. Returns
    /// whether a value was taken out.
    pub(crate) fn remove(&mut self, value: &Value) -> bool {
        let first = self.blocks.partition_point(|block| block.last().is_some_and(|last| last < value));
        let mut fallback = None;
        let mut found = None;
        // Equals can run over several blocks.
        for b in first..self.blocks.len() {
            let block = &self.blocks[b];
            if block.first().is_some_and(|v| v > value) {
                break;
            }
            let start = block.partition_point(|v| v < value);
            let end = block.partition_point(|v| v <= value);
            if let Some(i) = (start..end).find(|&i| block[i].same_spelling(value)) {
                found = Some((b, i));
                break;
            }
            if start < end && fallback.is_none() {
                fallback = Some((b, start));
            }
        }
        let Some((b, i)) = found.or(fallback) else { return false };
        self.blocks[b].remove(i);
        self.len -= 1;
        if self.blocks[b].is_empty() {
            self.blocks.remove(b);
        } else if b + 1 < self.blocks.len() && self.blocks[b].len() + self.blocks[b + 1].len() < BLOCK {
            // Keep blocks from shrinking to crumbs, which would make rank lookups walk more.
            let next = self.blocks.remove(b + 1);
            self.blocks[b].extend(next);
        }
        true
    }

    /// The value at 0-based `rank` in ascending order.
    pub(crate) fn get(&self, mut rank: usize) -> Option<&Value> {
        for block in &self.blocks {
            if rank < block.len() {
                return block.get(rank);
            }
            rank -= block.len();
        }
        None
    }

    /// `percentile_disc(fraction)`; NULL when empty.
    pub(crate) fn percentile(&self, fraction: f64) -> Value {
        if self.len == 0 {
            return Value::Null;
        }
        self.get(disc_rank(fraction, self.len)).cloned().unwrap_or(Value::Null)
    }

    /// The value `percentile_disc(fraction)` picks from the values mirrored (`now - value`
    /// sorts the other way round): the one at the mirrored rank.
    pub(crate) fn mirrored_percentile(&self, fraction: f64) -> Option<&Value> {
        if self.len == 0 {
            return None;
        }
        self.get(self.len - 1 - disc_rank(fraction, self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_postgres() {
        // ceil(p × n), 1-based, 0 taking the first row.
        assert_eq!(disc_rank(0.0, 5), 0);
        assert_eq!(disc_rank(0.5, 1), 0);
        assert_eq!(disc_rank(0.5, 4), 1);
        assert_eq!(disc_rank(0.5, 5), 2);
        assert_eq!(disc_rank(0.9, 10), 8);
        assert_eq!(disc_rank(0.9, 11), 9);
        assert_eq!(disc_rank(0.99, 100), 98);
        assert_eq!(disc_rank(1.0, 7), 6);
        // The double 0.95 is slightly below 0.95, but its product with 20 rounds to 19 exactly.
        assert_eq!(disc_rank(0.95, 20), 18);
    }

    #[test]
    fn insert_remove_and_select_over_many_blocks() {
        let mut r = Ranked::default();
        let mut plain: Vec<i64> = Vec::new();
        let mut x: i64 = 7;
        for step in 0..5000 {
            x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
            let v = x % 300;
            if step % 3 == 2 && !plain.is_empty() {
                let victim = plain.remove((x as usize) % plain.len());
                assert!(r.remove(&Value::Int8(victim)));
            } else {
                plain.push(v);
                r.insert(&Value::Int8(v));
            }
        }
        plain.sort_unstable();
        assert_eq!(r.len, plain.len());
        for (i, v) in plain.iter().enumerate() {
            assert_eq!(r.get(i), Some(&Value::Int8(*v)));
        }
        assert!(r.blocks.len() > 2, "the test spans several blocks");
        assert!(!r.remove(&Value::Int8(1000)));
    }
}
