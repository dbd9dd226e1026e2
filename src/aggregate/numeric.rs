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

    /// [`Self::finite_at_scale`] in an `i128`, when the sum is held in one and fits at the
    /// display scale.
    fn small_at_scale(&self) -> Option<(i128, i64)> {
        let scale = self.scales.last_key_value().map_or(0, |(s, _)| *s);
        let (total, total_scale) = self.finite.small_total()?;
        let total_scale = i64::from(total_scale);
        // Exact both ways: every input has at most the display scale.
        let unscaled = match scale >= total_scale {
            true => total.checked_mul(i128::try_from(small_pow10(scale - total_scale)?).ok()?)?,
            false => total / i128::try_from(small_pow10(total_scale - scale)?).ok()?,
        };
        Some((unscaled, scale))
    }

    /// `sum(x)` as PostgreSQL prints it; `None` when there was no input.
    pub(crate) fn sum_text(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        if let Some(special) = self.special() {
            return Some(special.text().to_string());
        }
        if let Some((unscaled, scale)) = self.small_at_scale() {
            return Some(small_decimal_text(unscaled, scale));
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
        if let Some((unscaled, scale)) = self.small_at_scale() {
            return Some(small_pg_div_text(unscaled, scale, self.count));
        }
        let (unscaled, scale) = self.finite_at_scale();
        Some(pg_div_text(&unscaled, scale, self.count))
    }
}

/// The text of `unscaled × 10^-scale` with exactly `scale` fraction digits, as PostgreSQL
/// prints a numeric of that display scale.
pub(crate) fn decimal_text(unscaled: &BigInt, scale: i64) -> String {
    point(unscaled.sign() == Sign::Minus, &unscaled.magnitude().to_string(), scale)
}

/// [`decimal_text`] of an `i128`, without a big integer: the sums, averages and ages of
/// operational data fit, and reading a KPI's value on every transaction went through
/// `BigInt` formatting before.
pub(crate) fn small_decimal_text(unscaled: i128, scale: i64) -> String {
    point(unscaled < 0, &unscaled.unsigned_abs().to_string(), scale)
}

/// `digits` with a decimal point `scale` digits from the right, padded with zeros.
fn point(negative: bool, digits: &str, scale: i64) -> String {
    let scale = usize::try_from(scale).unwrap_or(0);
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if negative {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
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
    div_scale(weight1 - weight2, first1 <= first2, scale)
}

/// The result scale from the quotient's weight: at least [`MIN_SIG_DIGITS`] significant
/// digits, at least the dividend's scale.
fn div_scale(weight_difference: i64, first_not_larger: bool, scale: i64) -> i64 {
    let qweight = weight_difference - i64::from(first_not_larger);
    (MIN_SIG_DIGITS - qweight * DEC_DIGITS).max(scale).clamp(0, MAX_DISPLAY_SCALE)
}

/// `numeric_div(dividend, divisor)` as PostgreSQL computes and prints it: the result scale
/// from [`select_div_scale`], the quotient rounded half away from zero at that scale.
pub(crate) fn pg_div_text(unscaled: &BigInt, scale: i64, divisor: u64) -> String {
    let small = i128::try_from(unscaled).ok().and_then(|u| small_div_text(u, scale, divisor));
    small.unwrap_or_else(|| big_div_text(unscaled, scale, divisor))
}

/// [`pg_div_text`] of an `i128` dividend.
pub(crate) fn small_pg_div_text(unscaled: i128, scale: i64, divisor: u64) -> String {
    small_div_text(unscaled, scale, divisor).unwrap_or_else(|| big_div_text(&BigInt::from(unscaled), scale, divisor))
}

/// [`pg_div_text`] in big integers: any size.
fn big_div_text(unscaled: &BigInt, scale: i64, divisor: u64) -> String {
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

/// [`pg_div_text`] in `u128` arithmetic; `None` where an intermediate would not fit.
fn small_div_text(unscaled: i128, scale: i64, divisor: u64) -> Option<String> {
    let magnitude = unscaled.unsigned_abs();
    let (weight1, first1) = small_weight_and_first_digit(magnitude, scale)?;
    let (weight2, first2) = small_weight_and_first_digit(u128::from(divisor), 0)?;
    let rscale = div_scale(weight1 - weight2, first1 <= first2, scale);
    let numerator = magnitude.checked_mul(small_pow10(rscale - scale)?)?;
    let divisor = u128::from(divisor);
    // The remainder is below the divisor, a u64: doubling it cannot overflow.
    let quotient = numerator / divisor + u128::from((numerator % divisor) * 2 >= divisor);
    let quotient = i128::try_from(quotient).ok()?;
    Some(small_decimal_text(if unscaled < 0 { -quotient } else { quotient }, rscale))
}

/// [`weight_and_first_digit`] of a `u128` magnitude.
fn small_weight_and_first_digit(magnitude: u128, scale: i64) -> Option<(i64, u128)> {
    let Some(log) = magnitude.checked_ilog10() else { return Some((0, 0)) };
    let exponent = i64::from(log) - scale;
    let weight = exponent.div_euclid(DEC_DIGITS);
    let shift = scale + weight * DEC_DIGITS;
    let first = match shift >= 0 {
        true => magnitude / small_pow10(shift)?,
        false => magnitude.checked_mul(small_pow10(-shift)?)?,
    };
    Some((weight, first))
}

fn small_pow10(n: i64) -> Option<u128> {
    10u128.checked_pow(u32::try_from(n).ok()?)
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

    /// The `u128` path prints what the big-integer path prints, digit for digit, wherever it
    /// answers; and it answers for every dividend of up to 30 digits by a count up to 10^9.
    #[test]
    fn small_and_big_quotients_print_alike() {
        let mut dividends: Vec<i128> = vec![0, 1, -1, 5, 9, 10, 99, 9999, 10_000, 123_456_789, 5_000_000_000_000];
        let mut x: i128 = 7;
        for _ in 0..400 {
            // A spread of magnitudes, signs and digit patterns.
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407) % 10i128.pow(30);
            dividends.push(x / 10i128.pow((x.unsigned_abs() % 29) as u32));
            dividends.push(-x);
        }
        dividends.extend([i128::MAX, i128::MIN + 1, 10i128.pow(37), -(10i128.pow(37)) + 1]);
        let divisors = [1u64, 2, 3, 7, 9, 10, 99, 10_000, 10_001, 65_537, 1_000_000_007, u64::MAX];
        let mut answered = 0;
        for &d in &dividends {
            for scale in [0i64, 1, 2, 3, 6, 9] {
                for &divisor in &divisors {
                    let big = big_div_text(&BigInt::from(d), scale, divisor);
                    match small_div_text(d, scale, divisor) {
                        Some(small) => {
                            assert_eq!(small, big, "{d} × 10^-{scale} / {divisor}");
                            answered += 1;
                        }
                        None => assert!(
                            d.unsigned_abs() >= 10u128.pow(30) || divisor > 1_000_000_007,
                            "{d} / {divisor} at scale {scale} fell back"
                        ),
                    }
                    assert_eq!(small_pg_div_text(d, scale, divisor), big);
                }
            }
            assert_eq!(small_decimal_text(d, 6), decimal_text(&BigInt::from(d), 6));
        }
        assert!(answered > dividends.len() * 60);
    }

    #[test]
    fn a_sum_held_small_reads_as_the_exact_one() {
        let mut s = sum(&["12.50", "-3.125", "0.1"]);
        assert_eq!(s.small_at_scale(), Some((9475, 3)));
        assert_eq!(s.sum_text().as_deref(), Some("9.475"));
        s.remove("-3.125");
        // The largest scale left is 2; the held total keeps scale 3 and divides exactly.
        assert_eq!(s.small_at_scale(), Some((1260, 2)));
        assert_eq!(s.sum_text().as_deref(), Some("12.60"));
        assert_eq!(s.avg_text().as_deref(), Some("6.3000000000000000"));
        let huge = "99999999999999999999999999999999999.999";
        let big = sum(&[huge, huge]);
        assert_eq!(big.small_at_scale(), None);
        assert_eq!(big.sum_text().as_deref(), Some("199999999999999999999999999999999999.998"));
    }

    #[test]
    fn decimal_text_pads_fractions() {
        assert_eq!(decimal_text(&BigInt::from(-5), 3), "-0.005");
        assert_eq!(decimal_text(&BigInt::from(12345), 2), "123.45");
        assert_eq!(decimal_text(&BigInt::from(0), 2), "0.00");
    }
}
