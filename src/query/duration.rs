//! Fixed-length ISO 8601 durations: how far back `{ ago: "PT10M" }` reaches.
//!
//! Only durations with one length are accepted — weeks, days, hours, minutes and seconds
//! (days as 24 hours: instants are UTC, with no daylight-saving jumps). Months and years are
//! refused rather than guessed: "one month ago" has no single length, and a filter whose
//! meaning depends on a calendar the engine does not keep would disagree with SQL.

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

/// Reads `[-]P[nW][nD][T[nH][nM][n[.f]S]]` into microseconds. A leading `-` reaches into the
/// future (`ago: "-PT1H"` is an hour from now). Fractions are allowed on seconds only, up to
/// microseconds.
pub fn parse_duration(text: &str) -> Result<i64, DurationError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_lengths_are_read() {
        assert_eq!(parse_duration("PT10M"), Ok(10 * MINUTE));
        assert_eq!(parse_duration("PT2S"), Ok(2 * SECOND));
        assert_eq!(parse_duration("PT0.25S"), Ok(250_000));
        assert_eq!(parse_duration("PT1.000001S"), Ok(1_000_001));
        assert_eq!(parse_duration("P1DT2H3M4.5S"), Ok(DAY + 2 * HOUR + 3 * MINUTE + 4_500_000));
        assert_eq!(parse_duration("P2W"), Ok(2 * WEEK));
        assert_eq!(parse_duration("P1W1D"), Ok(WEEK + DAY));
        assert_eq!(parse_duration("-PT1H"), Ok(-HOUR));
        assert_eq!(parse_duration("PT36H"), Ok(36 * HOUR));
    }

    #[test]
    fn calendar_units_and_bad_text_are_refused() {
        assert_eq!(parse_duration("P1M"), Err(DurationError::Calendar));
        assert_eq!(parse_duration("P1Y"), Err(DurationError::Calendar));
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
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad}");
        }
        assert_eq!(parse_duration("P99999999999999999W"), Err(DurationError::Overflow));
    }
}
