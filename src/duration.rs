//! Durations as people write them: `90s`, `10m`, `1h30m`, `2d` on the command line and in the
//! configuration, and ISO 8601 (`PT10M`, `P1DT2H`, `P1W`) in KPI windows and alert rules, where
//! GraphQL clients and other tools already speak it.
//!
//! Only fixed lengths: months and years are refused, since "a month ago" is not a duration.
//! One ISO grammar ([`parse_iso`], exact to the microsecond, signed for `ago` operands) serves
//! every ISO duration; the short form is for people at a command line. A duration crate would
//! be a dependency for a few dozen lines.

use std::time::Duration;

/// The longest duration accepted (about 31 years): far beyond any window or rule, and well
/// inside microseconds in an `i64`.
const MAX_SECONDS: f64 = 1e9;

/// Parses `90s`, `10m`, `1h30m`, `1.5h`, `24h`, `2d`, `500ms`, or ISO 8601 `PT10M`, `P1DT2H`,
/// `P2W`, `PT0.5S`. A bare number is refused, because "10" could mean seconds or minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. `90s`, `10m`, `24h` or `PT10M`".into());
    }
    let seconds = if s.starts_with(['P', 'p']) { iso(s, text)? } else { short(s, text)? };
    if !seconds.is_finite() || seconds > MAX_SECONDS {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Like [`parse_duration`], in microseconds (how timestamps are held).
pub fn parse_micros(text: &str) -> Result<i64, String> {
    parse_duration(text).map(|d| d.as_micros() as i64)
}

/// `1h30m` and friends.
fn short(s: &str, text: &str) -> Result<f64, String> {
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let (value, unit, after) = number_and_unit(rest, text)?;
        let seconds = match unit.trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "" => return Err(format!("`{text}` needs a unit: ms, s, m, h or d (e.g. `{value}s`)")),
            other => return Err(format!("unknown unit `{other}` in `{text}`; use ms, s, m, h or d")),
        };
        total += value * seconds;
        rest = after;
    }
    Ok(total)
}

/// ISO 8601, by the one ISO grammar ([`parse_iso`]); letters in either case.
fn iso(s: &str, text: &str) -> Result<f64, String> {
    match parse_iso(&s.to_ascii_uppercase()) {
        Ok(micros) => Ok(micros as f64 / 1e6),
        Err(DurationError::Calendar) => {
            Err(format!("`{text}`: months and years have no fixed length; write days (`P30D`) instead"))
        }
        Err(DurationError::Overflow) => Err(format!("`{text}` is too long")),
        Err(DurationError::Malformed) => Err(format!(
            "`{text}` is not an ISO 8601 duration such as `PT10M`, `PT1H30M`, `P1D` or `PT0.5S` \
             (a fraction only on seconds)"
        )),
    }
}

/// The number at the start of `rest`, the unit letters after it, and what follows.
fn number_and_unit<'a>(rest: &'a str, text: &str) -> Result<(f64, &'a str, &'a str), String> {
    let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, after) = rest.split_at(number_len);
    let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
    let (unit, after) = after.split_at(unit_len);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration; write e.g. `10m` or `PT10M`"))?;
    if value < 0.0 {
        return Err(format!("`{text}` is negative"));
    }
    Ok((value, unit, after))
}

/// Why a duration cannot be read; says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("months and years are not fixed lengths: write the duration in weeks, days, hours, minutes or seconds")]
    Calendar,
    #[error("expected an ISO 8601 duration such as \"PT10M\", \"P1DT12H\", \"PT0.5S\" or \"P2W\"")]
    Malformed,
    #[error("the duration is too long")]
    Overflow,
}

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Reads ISO 8601 `[-]P[nW][nD][T[nH][nM][n[.f]S]]` into microseconds (the one ISO grammar:
/// `ago` operands, KPI windows, rules, configuration). A leading `-` reaches into the
/// future (`ago: "-PT1H"` is an hour from now). Fractions are allowed on seconds only, up to
/// microseconds.
pub fn parse_iso(text: &str) -> Result<i64, DurationError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let rest = rest.strip_prefix('P').ok_or(DurationError::Malformed)?;
    let (date, time) = match rest.split_once('T') {
        Some((_, "")) => return Err(DurationError::Malformed),
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total: i64 = 0;
    let mut any = false;
    let mut add = |micros: Option<i64>| -> Result<(), DurationError> {
        any = true;
        total = micros.and_then(|m| total.checked_add(m)).ok_or(DurationError::Overflow)?;
        Ok(())
    };
    for (number, unit) in designators(date)? {
        match unit {
            'Y' | 'M' => return Err(DurationError::Calendar),
            'W' => add(whole(number)?.checked_mul(WEEK))?,
            'D' => add(whole(number)?.checked_mul(DAY))?,
            _ => return Err(DurationError::Malformed),
        }
    }
    for (number, unit) in designators(time)? {
        match unit {
            'H' => add(whole(number)?.checked_mul(HOUR))?,
            'M' => add(whole(number)?.checked_mul(MINUTE))?,
            'S' => add(Some(seconds(number)?))?,
            _ => return Err(DurationError::Malformed),
        }
    }
    if !any {
        return Err(DurationError::Malformed);
    }
    Ok(if negative { -total } else { total })
}

/// `"1W2D"` → `[("1", 'W'), ("2", 'D')]`; every number unsigned, each unit after its number.
fn designators(s: &str) -> Result<Vec<(&str, char)>, DurationError> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            let number = &s[start..i];
            if number.is_empty() || out.iter().any(|(_, u)| *u == c) {
                return Err(DurationError::Malformed);
            }
            out.push((number, c));
            start = i + 1;
        } else if !(c.is_ascii_digit() || c == '.') {
            return Err(DurationError::Malformed);
        }
    }
    if start != s.len() {
        return Err(DurationError::Malformed);
    }
    Ok(out)
}

fn whole(number: &str) -> Result<i64, DurationError> {
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::Malformed);
    }
    number.parse().map_err(|_| DurationError::Overflow)
}

fn seconds(number: &str) -> Result<i64, DurationError> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::Malformed);
    }
    let frac: i64 =
        if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().map_err(|_| DurationError::Malformed)? };
    whole(int)?.checked_mul(SECOND).and_then(|s| s.checked_add(frac)).ok_or(DurationError::Overflow)
}

/// How long from `now` until `at` (µs since the Unix epoch), nothing when it has passed. `at`
/// may be far in the past (`i64::MIN` for "at once") without overflowing.
pub fn until(at: i64, now: i64) -> Duration {
    Duration::from_micros(at.saturating_sub(now).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_due_at_once_waits_for_nothing() {
        // After an alert set is restored its wake-up bound is `i64::MIN`: at once (a plain
        // subtraction overflowed here).
        assert_eq!(until(i64::MIN, 1_765_000_000_000_000), Duration::ZERO);
        assert_eq!(until(5, 7), Duration::ZERO);
        assert_eq!(until(7_000_005, 5), Duration::from_secs(7));
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn iso_forms() {
        assert_eq!(parse_micros("PT10M"), Ok(600_000_000));
        assert_eq!(parse_micros("PT1H30M"), Ok(5_400_000_000));
        assert_eq!(parse_micros("P1DT2H"), Ok(93_600_000_000));
        assert_eq!(parse_micros("P2W"), Ok(1_209_600_000_000));
        assert_eq!(parse_micros("PT0.5S"), Ok(500_000));
        assert!(parse_duration("P1M").unwrap_err().contains("no fixed length"));
        assert!(parse_duration("P").is_err());
        assert!(parse_duration("PT").is_err());
        assert!(parse_duration("PT5X").is_err());
        // One ISO grammar with `ago`: a fraction only on seconds; letters in either case here.
        assert!(parse_duration("PT1.5H").unwrap_err().contains("fraction only on seconds"));
        assert_eq!(parse_micros("pt10m"), Ok(600_000_000));
    }
}

#[cfg(test)]
mod iso_tests {
    use super::*;

    #[test]
    fn fixed_lengths_are_read() {
        assert_eq!(parse_iso("PT10M"), Ok(10 * MINUTE));
        assert_eq!(parse_iso("PT2S"), Ok(2 * SECOND));
        assert_eq!(parse_iso("PT0.25S"), Ok(250_000));
        assert_eq!(parse_iso("PT1.000001S"), Ok(1_000_001));
        assert_eq!(parse_iso("P1DT2H3M4.5S"), Ok(DAY + 2 * HOUR + 3 * MINUTE + 4_500_000));
        assert_eq!(parse_iso("P2W"), Ok(2 * WEEK));
        assert_eq!(parse_iso("P1W1D"), Ok(WEEK + DAY));
        assert_eq!(parse_iso("-PT1H"), Ok(-HOUR));
        assert_eq!(parse_iso("PT36H"), Ok(36 * HOUR));
    }

    #[test]
    fn calendar_units_and_bad_text_are_refused() {
        assert_eq!(parse_iso("P1M"), Err(DurationError::Calendar));
        assert_eq!(parse_iso("P1Y"), Err(DurationError::Calendar));
        for bad in [
            "",
            "P",
            "PT",
            "10M",
            "PT10",
            "PTM",
            "P1H",
            "PT1D",
            "PT1.5M",
            "PT0.1234567S",
            "P-1D",
            "PT1M1M",
            "pt1m",
            "PT 1M",
        ] {
            assert_eq!(parse_iso(bad), Err(DurationError::Malformed), "{bad}");
        }
        assert_eq!(parse_iso("P99999999999999999W"), Err(DurationError::Overflow));
    }
}
