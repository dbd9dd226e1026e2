//! An exact, removable sum of floats.
//!
//! Adding and later subtracting a float in floating point does not give back what was there
//! (`1e20 + 1 - 1e20` is 0), so an incremental float sum would drift from a fresh one as rows
//! come and go. Every finite f64 is an integer multiple of 2^-1074, so the sum is kept exactly
//! as a big integer in those units and rounded once, correctly, when read. NaN and the
//! infinities are counted apart, because `inf - inf` cannot be undone either.
//!
//! PostgreSQL adds floats one by one in scan order, so its sum carries that order's rounding;
//! the exact sum rounded once is within that error of it, and is the same whatever the order.

use bigdecimal::num_bigint::BigInt;
use bigdecimal::num_traits::{Signed, ToPrimitive, Zero};

/// The exponent of the smallest subnormal f64: every finite f64 is a multiple of 2^-1074.
const UNIT_EXP: i32 = -1074;

#[derive(Clone, Debug, Default)]
pub(crate) struct FloatSum {
    /// The sum of the finite inputs, in units of 2^-1074.
    units: BigInt,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    /// Non-null inputs.
    pub(crate) count: u64,
}

impl FloatSum {
    pub(crate) fn add(&mut self, x: f64) {
        self.count += 1;
        match classify(x) {
            Kind::Finite(units) => self.units += units,
            Kind::NaN => self.nan += 1,
            Kind::PosInf => self.pos_inf += 1,
            Kind::NegInf => self.neg_inf += 1,
        }
    }

    pub(crate) fn remove(&mut self, x: f64) {
        self.count = self.count.saturating_sub(1);
        match classify(x) {
            Kind::Finite(units) => self.units -= units,
            Kind::NaN => self.nan = self.nan.saturating_sub(1),
            Kind::PosInf => self.pos_inf = self.pos_inf.saturating_sub(1),
            Kind::NegInf => self.neg_inf = self.neg_inf.saturating_sub(1),
        }
    }

    /// The sum, rounded once to the nearest f64; `None` when there was no input. NaN when a NaN
    /// was added or both infinities were, as IEEE arithmetic (and PostgreSQL) would give.
    pub(crate) fn sum(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            f64::NAN
        } else if self.pos_inf > 0 {
            f64::INFINITY
        } else if self.neg_inf > 0 {
            f64::NEG_INFINITY
        } else {
            units_to_f64(&self.units)
        })
    }

    /// `avg(x)`: the sum divided by the number of inputs, as PostgreSQL's `float8_avg` does.
    pub(crate) fn avg(&self) -> Option<f64> {
        self.sum().map(|s| s / self.count as f64)
    }
}

enum Kind {
    Finite(BigInt),
    NaN,
    PosInf,
    NegInf,
}

fn classify(x: f64) -> Kind {
    if x.is_nan() {
        return Kind::NaN;
    }
    if x.is_infinite() {
        return if x > 0.0 { Kind::PosInf } else { Kind::NegInf };
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // x = mantissa × 2^(exp), with exp ≥ -1074 for every finite double.
    let (mantissa, exp) = if exponent == 0 { (fraction, UNIT_EXP) } else { (fraction | (1u64 << 52), exponent - 1075) };
    let units = BigInt::from(mantissa) << ((exp - UNIT_EXP) as usize);
    Kind::Finite(if x.is_sign_negative() { -units } else { units })
}

/// `units × 2^-1074`, rounded to nearest (ties to even).
fn units_to_f64(units: &BigInt) -> f64 {
    if units.is_zero() {
        return 0.0;
    }
    let magnitude = units.magnitude();
    let bits = magnitude.bits();
    // Keep the top 64 bits and fold everything below into a sticky bit: u64 → f64 then
    // rounds exactly as rounding the whole number would.
    let (top, shift) = if bits > 64 {
        let shift = bits - 64;
        let top = (magnitude >> shift).to_u64().unwrap_or(u64::MAX);
        let sticky = magnitude.trailing_zeros().is_some_and(|z| z < shift);
        (top | u64::from(sticky), shift as i32)
    } else {
        (magnitude.to_u64().unwrap_or(u64::MAX), 0)
    };
    let value = scale_by_power_of_two(top as f64, shift + UNIT_EXP);
    if units.is_negative() { -value } else { value }
}

/// `x × 2^exp` in steps whose factors are exact powers of two, so only the last step rounds.
fn scale_by_power_of_two(mut x: f64, mut exp: i32) -> f64 {
    let pow2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
    while exp > 1000 {
        x *= pow2(1000);
        exp -= 1000;
    }
    while exp < -1000 {
        x *= pow2(-1000);
        exp += 1000;
    }
    x * pow2(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_gives_back_exactly_what_was_there() {
        let mut s = FloatSum::default();
        s.add(0.1);
        s.add(1e20);
        s.add(0.2);
        s.remove(1e20);
        assert_eq!(s.sum(), Some(0.1 + 0.2));
        s.add(f64::INFINITY);
        s.add(f64::NEG_INFINITY);
        assert!(s.sum().is_some_and(f64::is_nan));
        s.remove(f64::NEG_INFINITY);
        assert_eq!(s.sum(), Some(f64::INFINITY));
        s.remove(f64::INFINITY);
        s.remove(0.1);
        s.remove(0.2);
        assert_eq!(s.sum(), None);
    }

    #[test]
    fn rounding_is_exact_across_the_range() {
        for x in [1.0, -2.5, f64::MAX, f64::MIN_POSITIVE, 5e-324, 123456.789e100, -3.3e-300] {
            let mut s = FloatSum::default();
            s.add(x);
            assert_eq!(s.sum(), Some(x), "{x}");
        }
        let mut s = FloatSum::default();
        // 2^53 + 1 is not a double: the exact sum rounds to even.
        s.add(9007199254740992.0);
        s.add(1.0);
        assert_eq!(s.sum(), Some(9007199254740992.0));
        s.add(1.0);
        assert_eq!(s.sum(), Some(9007199254740994.0));
        // The sum of 0.1 ten times is 1 exactly rounded, where naive addition gives 0.9999…
        let mut s = FloatSum::default();
        (0..10).for_each(|_| s.add(0.1));
        assert_eq!(s.sum(), Some(1.0));
        assert_eq!(s.avg(), Some(0.1));
    }
}
