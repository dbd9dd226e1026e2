//! An exact running sum of decimal texts, fast for the common case.
//!
//! Most numerics in operational data are small (`numeric(12,2)` amounts), and parsing each one
//! into a heap-allocated big decimal made a 200k-row aggregate several times slower than it
//! needs to be. So values are added as scaled `i128` integers while they fit (38 digits), and
//! whatever would overflow spills into an exact [`BigDecimal`]. Both parts are exact, so the
//! total is too, and a value can be subtracted again exactly.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::BigInt;

/// Most decimal digits an `i128` always holds.
const FAST_DIGITS: usize = 38;

#[derive(Clone, Debug, Default)]
pub(crate) struct DecimalSum {
    /// The fast part: `fast × 10^-fast_scale`.
    fast: i128,
    fast_scale: u32,
    /// What did not fit the fast part.
    slow: BigDecimal,
}

/// `[-]digits[.digits]`, split; `None` for any other spelling.
fn plain(text: &str) -> Option<(bool, &str, &str)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty())).then_some((negative, int, frac))
}

/// The display scale of a decimal text (digits after the point), when it is a number at all.
pub(crate) fn scale_of(text: &str) -> Option<i64> {
    match plain(text) {
        Some((_, _, frac)) => Some(frac.len() as i64),
        None => BigDecimal::from_str(text).ok().map(|d| d.fractional_digit_count().max(0)),
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl DecimalSum {
    /// Adds (`negate` false) or subtracts the decimal `text`, which [`scale_of`] accepted.
    pub(crate) fn add(&mut self, text: &str, negate: bool) {
        if !self.add_fast(text, negate) {
            self.spill();
            if let Ok(value) = BigDecimal::from_str(text) {
                if negate {
                    self.slow -= value;
                } else {
                    self.slow += value;
                }
            }
        }
    }

    /// Adds in `i128` when the value and the new total fit; leaves the total's value unchanged
    /// otherwise.
    fn add_fast(&mut self, text: &str, negate: bool) -> bool {
        let Some((negative, int, frac)) = plain(text) else { return false };
        if int.len() + frac.len() > FAST_DIGITS {
            return false;
        }
        let mut value: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            value = value * 10 + i128::from(b - b'0');
        }
        if negative != negate {
            value = -value;
        }
        let scale = frac.len() as u32;
        // Bring both to the larger scale; the running total only ever gains scale.
        if scale > self.fast_scale {
            let Some(total) = pow10(scale - self.fast_scale).and_then(|p| self.fast.checked_mul(p)) else {
                return false;
            };
            self.fast = total;
            self.fast_scale = scale;
        } else if let Some(scaled) = pow10(self.fast_scale - scale).and_then(|p| value.checked_mul(p)) {
            value = scaled;
        } else {
            return false;
        }
        match self.fast.checked_add(value) {
            Some(total) => {
                self.fast = total;
                true
            }
            None => false,
        }
    }

    /// Moves the fast part into the slow one, making room.
    fn spill(&mut self) {
        if self.fast != 0 {
            self.slow += BigDecimal::new(BigInt::from(self.fast), i64::from(self.fast_scale));
        }
        self.fast = 0;
        self.fast_scale = 0;
    }

    /// The exact total as `unscaled × 10^-scale`, when nothing ever spilled out of the fast
    /// part (or what did cancelled out).
    pub(crate) fn small_total(&self) -> Option<(i128, u32)> {
        (self.slow == BigDecimal::default()).then_some((self.fast, self.fast_scale))
    }

    /// The exact total.
    pub(crate) fn total(&self) -> BigDecimal {
        &self.slow + BigDecimal::new(BigInt::from(self.fast), i64::from(self.fast_scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(ops: &[(&str, bool)]) -> BigDecimal {
        let mut s = DecimalSum::default();
        ops.iter().for_each(|(t, neg)| s.add(t, *neg));
        s.total()
    }

    #[test]
    fn overflowing_the_fast_part_stays_exact() {
        let big = "99999999999999999999999999999999999.999"; // 38 digits
        let sum = total(&[(big, false), (big, false), ("0.001", false), (big, true)]);
        assert_eq!(sum, BigDecimal::from_str("100000000000000000000000000000000000.000").unwrap());
        let long = "1234567890123456789012345678901234567890.5"; // too long for i128
        assert_eq!(total(&[(long, false), ("1", false), (long, true)]), BigDecimal::from(1));
        assert_eq!(total(&[("1.5", false), ("-2.25", false), ("1e3", false)]), BigDecimal::from_str("999.25").unwrap());
        assert_eq!(scale_of("1e3"), Some(0));
        assert_eq!(scale_of("-0.010"), Some(3));
        assert_eq!(scale_of("abc"), None);
    }
}
