//! Exact decimal arithmetic for sums and averages, with PostgreSQL's result scales.
//!
//! A numeric sum is kept exactly ([`super::decimal_sum`]) plus counts of NaN and ±Infinity inputs,
//! and the multiset of input scales: PostgreSQL prints `sum(numeric)` with the largest input
//! display scale, and when the one value carrying it is removed, the next largest takes over.
//! Averages (of integers or numerics) are PostgreSQL's `numeric_div(sum, count)`: the scale
//! comes from its `select_div_scale` (at least 16 significant digits, at least the sum's
//! scale) and the quotient is rounded half away from zero — reproduced here digit for digit.

use std::collections::BTreeMap;

use bigdecimal::num_bigint::{BigInt, Sign};
use bigdecimal::num_traits::{Signed, Zero};

use super::decimal_sum::{DecimalSum, scale_of};

/// PostgreSQL's `NUMERIC_MIN_SIG_DIGITS`: a quotient gets at least this many significant digits.
const MIN_SIG_DIGITS: i64 = 16;
/// PostgreSQL's `NUMERIC_MAX_DISPLAY_SCALE`.
const MAX_DISPLAY_SCALE: i64 = 1000;
/// PostgreSQL stores numerics in base-10000 digits; weights are counted in them.
const DEC_DIGITS: i64 = 4;

/// One numeric input, classified.
pub(crate) enum NumericInput<'a> {
    Finite { text: &'a str, scale: i64 },
    NaN,
    PosInf,
    NegInf,
}

impl NumericInput<'_> {
    /// Classifies PostgreSQL's numeric text. Text that is not a number (which the decoder
    /// never produces) counts as NaN, so it shows in the result instead of vanishing.
    pub(crate) fn parse(text: &str) -> NumericInput<'_> {
        match text {
            "NaN" => NumericInput::NaN,
            "Infinity" => NumericInput::PosInf,
            "-Infinity" => NumericInput::NegInf,
            _ => match scale_of(text) {
                Some(scale) => NumericInput::Finite { text, scale },
                None => NumericInput::NaN,
            },
        }
    }
}

/// An exact, removable sum of numeric values.
#[derive(Clone, Debug, Default)]
pub(crate) struct NumericSum {
    finite: DecimalSum,
    /// How many finite inputs have each display scale.
    scales: BTreeMap<i64, u64>,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    /// Non-null inputs, special ones included (the divisor of an average).
    pub(crate) count: u64,
}

/// What a sum or average evaluates to.
pub(crate) enum Special {
    NaN,
    PosInf,
    NegInf,
}

impl Special {
    pub(crate) fn text(&self) -> &'static str {
        match self {
            Special::NaN => "NaN",
            Special::PosInf => "Infinity",
            Special::NegInf => "-Infinity",
        }
    }
}

impl NumericSum {
    pub(crate) fn add(&mut self, text: &str) {
        self.count += 1;
        match NumericInput::parse(text) {
            NumericInput::Finite { text, scale } => {
                self.finite.add(text, false);
                *self.scales.entry(scale).or_default() += 1;
            }
            NumericInput::NaN => self.nan += 1,
            NumericInput::PosInf => self.pos_inf += 1,
            NumericInput::NegInf => self.neg_inf += 1,
        }
    }

    pub(crate) fn remove(&mut self, text: &str) {
        self.count = self.count.saturating_sub(1);
        match NumericInput::parse(text) {
            NumericInput::Finite { text, scale } => {
                self.finite.add(text, true);
                if let Some(n) = self.scales.get_mut(&scale) {
                    *n -= 1;
                    if *n == 0 {
                        self.scales.remove(&scale);
                    }
                }
            }
            NumericInput::NaN => self.nan = self.nan.saturating_sub(1),
            NumericInput::PosInf => self.pos_inf = self.pos_inf.saturating_sub(1),
            NumericInput::NegInf => self.neg_inf = self.neg_inf.saturating_sub(1),
        }
    }

    /// PostgreSQL: NaN wins, +Infinity and -Infinity together are NaN.
    pub(crate) fn special(&self) -> Option<Special> {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            Some(Special::NaN)
        } else if self.pos_inf > 0 {
            Some(Special::PosInf)
        } else if self.neg_inf > 0 {
            Some(Special::NegInf)
        } else {
            None
        }
    }

    /// The finite part as an unscaled integer at the sum's display scale.
    fn finite_at_scale(&self) -> (BigInt, i64) {
        let scale = self.scales.last_key_value().map_or(0, |(s, _)| *s);
        // Every input has at most this scale, so the exact sum has no digits beyond it.
        let (unscaled, _) = self.finite.total().with_scale(scale).into_bigint_and_exponent();
        (unscaled, scale)
    }

    /// `sum(x)` as PostgreSQL prints it; `None` when there was no input.
    pub(crate) fn sum_text(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        if let Some(special) = self.special() {
            return Some(special.text().to_string());
        }
        let (unscaled, scale) = self.finite_at_scale();
        Some(decimal_text(&unscaled, scale))
    }

    /// `avg(x)` as PostgreSQL prints it; `None` when there was no input.
    pub(crate) fn avg_text(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        if let Some(special) = self.special() {
            return Some(special.text().to_string());
        }
        let (unscaled, scale) = self.finite_at_scale();
        Some(pg_div_text(&unscaled, scale, self.count))
    }
}

/// The text of `unscaled × 10^-scale` with exactly `scale` fraction digits, as PostgreSQL
/// prints a numeric of that display scale.
pub(crate) fn decimal_text(unscaled: &BigInt, scale: i64) -> String {
    let digits = unscaled.abs().to_string();
    let scale = usize::try_from(scale).unwrap_or(0);
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if unscaled.sign() == Sign::Minus {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
    out
}

/// PostgreSQL's normalized weight (in base-10000 digits) and first base-10000 digit of
/// `|unscaled| × 10^-scale`; zero has weight 0 and first digit 0.
fn weight_and_first_digit(unscaled: &BigInt, scale: i64) -> (i64, BigInt) {
    if unscaled.is_zero() {
        return (0, BigInt::zero());
    }
    let magnitude = unscaled.abs();
    let digits = magnitude.to_string().len() as i64;
    // Decimal exponent of the leading digit, then the base-10000 group that holds it.
    let exponent = digits - 1 - scale;
    let weight = exponent.div_euclid(DEC_DIGITS);
    let shift = scale + weight * DEC_DIGITS;
    let first = if shift >= 0 { magnitude / pow10(shift) } else { magnitude * pow10(-shift) };
    (weight, first)
}

fn pow10(n: i64) -> BigInt {
    BigInt::from(10u32).pow(u32::try_from(n).unwrap_or(0))
}

/// PostgreSQL's `select_div_scale` for `dividend / divisor`, the dividend having display scale
/// `scale` and the divisor being a count (scale 0).
fn select_div_scale(unscaled: &BigInt, scale: i64, divisor: u64) -> i64 {
    let (weight1, first1) = weight_and_first_digit(unscaled, scale);
    let (weight2, first2) = weight_and_first_digit(&BigInt::from(divisor), 0);
    let mut qweight = weight1 - weight2;
    if first1 <= first2 {
        qweight -= 1;
    }
    (MIN_SIG_DIGITS - qweight * DEC_DIGITS).max(scale).clamp(0, MAX_DISPLAY_SCALE)
}

/// `numeric_div(dividend, divisor)` as PostgreSQL computes and prints it: the result scale
/// from [`select_div_scale`], the quotient rounded half away from zero at that scale.
pub(crate) fn pg_div_text(unscaled: &BigInt, scale: i64, divisor: u64) -> String {
    let rscale = select_div_scale(unscaled, scale, divisor);
    let numerator = unscaled.abs() * pow10(rscale - scale);
    let divisor = BigInt::from(divisor);
    let mut quotient = &numerator / &divisor;
    let remainder = &numerator - &quotient * &divisor;
    if remainder * 2 >= divisor {
        quotient += 1;
    }
    if unscaled.is_negative() {
        quotient = -quotient;
    }
    decimal_text(&quotient, rscale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[&str]) -> NumericSum {
        let mut s = NumericSum::default();
        values.iter().for_each(|v| s.add(v));
        s
    }

    #[test]
    fn sum_keeps_the_largest_input_scale() {
        assert_eq!(sum(&["1.50", "2.5"]).sum_text().as_deref(), Some("4.00"));
        assert_eq!(sum(&["-0.001", "0.001"]).sum_text().as_deref(), Some("0.000"));
        assert_eq!(sum(&[]).sum_text(), None);
        let mut s = sum(&["1.5", "2.125", "3"]);
        s.remove("2.125");
        assert_eq!(s.sum_text().as_deref(), Some("4.5"));
        let huge = "123456789012345678901234567890.123456789";
        assert_eq!(sum(&[huge, huge]).sum_text().as_deref(), Some("246913578024691357802469135780.246913578"));
    }

    #[test]
    fn specials_follow_postgres() {
        assert_eq!(sum(&["1", "NaN"]).sum_text().as_deref(), Some("NaN"));
        assert_eq!(sum(&["1", "Infinity"]).sum_text().as_deref(), Some("Infinity"));
        assert_eq!(sum(&["-Infinity", "Infinity"]).sum_text().as_deref(), Some("NaN"));
        assert_eq!(sum(&["-Infinity", "5"]).avg_text().as_deref(), Some("-Infinity"));
        let mut s = sum(&["1", "NaN"]);
        s.remove("NaN");
        assert_eq!(s.sum_text().as_deref(), Some("1"));
    }

    #[test]
    fn averages_match_postgres_output() {
        // Values printed by PostgreSQL 15 for the same inputs.
        assert_eq!(sum(&["1", "2"]).avg_text().as_deref(), Some("1.5000000000000000"));
        assert_eq!(sum(&["1", "2", "2"]).avg_text().as_deref(), Some("1.6666666666666667"));
        assert_eq!(sum(&["10000", "20000"]).avg_text().as_deref(), Some("15000.000000000000"));
        assert_eq!(sum(&["0.5"]).avg_text().as_deref(), Some("0.50000000000000000000"));
        assert_eq!(sum(&["-1", "-2"]).avg_text().as_deref(), Some("-1.5000000000000000"));
        assert_eq!(sum(&["0"]).avg_text().as_deref(), Some("0.00000000000000000000"));
        assert_eq!(sum(&["12.34", "0.01"]).avg_text().as_deref(), Some("6.1750000000000000"));
        assert_eq!(sum(&["1.5"]).avg_text().as_deref(), Some("1.50000000000000000000"));
        assert_eq!(sum(&["1.50", "2.5"]).avg_text().as_deref(), Some("2.0000000000000000"));
        assert_eq!(sum(&["123456789012", "7"]).avg_text().as_deref(), Some("61728394509.50000000"));
        assert_eq!(sum(&["0.000001234", "0.00000001"]).avg_text().as_deref(), Some("0.000000622000000000000000"));
    }

    #[test]
    fn decimal_text_pads_fractions() {
        assert_eq!(decimal_text(&BigInt::from(-5), 3), "-0.005");
        assert_eq!(decimal_text(&BigInt::from(12345), 2), "123.45");
        assert_eq!(decimal_text(&BigInt::from(0), 2), "0.00");
    }
}
