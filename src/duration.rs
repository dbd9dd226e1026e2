//! Durations as people write them: `90s`, `10m`, `1h30m`, `2d` on the command line and in the
//! configuration, and ISO 8601 (`PT10M`, `P1DT2H`, `P1W`) in KPI windows and alert rules, where
//! GraphQL clients and other tools already speak it.
//!
//! Only fixed lengths: months and years are refused, since "a month ago" is not a duration.
//! A duration crate would be a dependency for a dozen lines and two grammars.

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

/// ISO 8601: `P[nW][nD][T[nH][nM][nS]]`, fractions allowed.
fn iso(s: &str, text: &str) -> Result<f64, String> {
    let bad = || format!("`{text}` is not an ISO 8601 duration such as `PT10M`, `PT1H30M` or `P1D`");
    let body = &s[1..];
    if body.is_empty() {
        return Err(bad());
    }
    let (date, time) = match body.find(['T', 't']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mut total = 0.0;
    let mut rest = date;
    while !rest.is_empty() {
        let (value, unit, after) = number_and_unit(rest, text)?;
        total += value
            * match unit {
                "W" | "w" => 7.0 * 86_400.0,
                "D" | "d" => 86_400.0,
                "M" | "m" | "Y" | "y" => {
                    return Err(format!(
                        "`{text}`: months and years have no fixed length; write days (`P30D`) instead"
                    ));
                }
                _ => return Err(bad()),
            };
        rest = after;
    }
    if let Some(time) = time {
        if time.is_empty() {
            return Err(bad());
        }
        let mut rest = time;
        while !rest.is_empty() {
            let (value, unit, after) = number_and_unit(rest, text)?;
            total += value
                * match unit {
                    "H" | "h" => 3600.0,
                    "M" | "m" => 60.0,
                    "S" | "s" => 1.0,
                    _ => return Err(bad()),
                };
            rest = after;
        }
    }
    Ok(total)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
