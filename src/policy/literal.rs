//! Literals of the filter language: a JSON value (from GraphQL arguments, the policy file or a
//! token's claims) read as a value of one column's type.
//!
//! The accepted text forms are the canonical ones `src/value.rs` prints (int8 and numeric as
//! strings, ISO 8601 timestamps and durations, `\x…` hex for bytea), so a value copied out of a
//! result can be pasted back into a filter. Each literal becomes a value of the column's own
//! kind, which keeps comparisons exact and lets ordered indexes serve them.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::Value as Json;

use crate::registry::ColumnType;
use crate::value::{Interval, Value, days_from_civil};

/// Why a literal does not fit a column; says what was expected, never echoes the input (it may
/// come from a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct LiteralError {
    pub expected: String,
}

fn expected(what: &str) -> LiteralError {
    LiteralError { expected: what.to_string() }
}

/// Reads `json` as a non-null value of a column of type `ty`.
pub fn value_of(json: &Json, ty: &ColumnType) -> Result<Value, LiteralError> {
    match ty {
        ColumnType::Bool => json.as_bool().map(Value::Bool).ok_or_else(|| expected("true or false")),
        ColumnType::Int2 => integer(json)
            .and_then(|i| i16::try_from(i).ok())
            .map(Value::Int2)
            .ok_or_else(|| expected("an integer between -32768 and 32767")),
        ColumnType::Int4 => integer(json)
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Int4)
            .ok_or_else(|| expected("a 32-bit integer")),
        ColumnType::Int8 => {
            integer(json).map(Value::Int8).ok_or_else(|| expected("a 64-bit integer (a number or a string of digits)"))
        }
        ColumnType::Float4 | ColumnType::Float8 => {
            float(json).map(Value::Float8).ok_or_else(|| expected("a number (or \"NaN\", \"Infinity\", \"-Infinity\")"))
        }
        ColumnType::Numeric => numeric(json)
            .map(|t| Value::Numeric(t.into()))
            .ok_or_else(|| expected("a decimal number such as \"12.50\" (digits, one optional point, no exponent)")),
        ColumnType::Text => json.as_str().map(Value::text).ok_or_else(|| expected("a string")),
        ColumnType::Uuid => json
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(Value::Uuid)
            .ok_or_else(|| expected("a UUID such as \"67e55044-10b1-426f-9247-bb680e5fe0c8\"")),
        ColumnType::Date => {
            json.as_str().and_then(date).map(Value::Date).ok_or_else(|| expected("a date such as \"2024-05-31\""))
        }
        ColumnType::Time => {
            json.as_str().and_then(time).map(Value::Time).ok_or_else(|| expected("a time such as \"13:45:00\""))
        }
        ColumnType::Timestamp => json
            .as_str()
            .and_then(timestamp)
            .map(Value::Timestamp)
            .ok_or_else(|| expected("a timestamp without zone such as \"2024-05-31T13:45:00\"")),
        ColumnType::TimestampTz => json
            .as_str()
            .and_then(timestamptz)
            .map(Value::TimestampTz)
            .ok_or_else(|| expected("a timestamp with zone such as \"2024-05-31T13:45:00Z\" or \"…+02:00\"")),
        ColumnType::Interval => json
            .as_str()
            .and_then(interval)
            .map(Value::Interval)
            .ok_or_else(|| expected("an ISO 8601 duration such as \"P1DT2H\" or \"PT30M\"")),
        ColumnType::Bytes => json
            .as_str()
            .and_then(bytes)
            .map(|b| Value::Bytes(Arc::from(b)))
            .ok_or_else(|| expected("bytes as \"\\\\x\" followed by hex digits")),
        ColumnType::Json | ColumnType::Array(_) | ColumnType::Other(_) => {
            Err(expected("nothing: this column can only be tested with isNull"))
        }
    }
}

fn integer(json: &Json) -> Option<i64> {
    match json {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => numeric_text(other).and_then(|t| t.parse().ok()),
        },
        _ => None,
    }
}

fn numeric(json: &Json) -> Option<String> {
    match json {
        Json::Number(n) => numeric_text(&n.to_string()),
        Json::String(s) => match s.as_str() {
            "NaN" | "Infinity" | "-Infinity" => Some(s.clone()),
            other => numeric_text(other),
        },
        _ => None,
    }
}

/// `[+-]digits[.digits]` as PostgreSQL prints a numeric (no exponent: the replica compares
/// numerics by their digits).
fn numeric_text(s: &str) -> Option<String> {
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let valid = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    valid.then(|| s.strip_prefix('+').unwrap_or(s).to_string())
}

fn date(s: &str) -> Option<i32> {
    match s {
        "infinity" => Some(i32::MAX),
        "-infinity" => Some(i32::MIN),
        _ => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            use chrono::Datelike;
            days_from_civil(d.year(), d.month(), d.day())
        }
    }
}

fn time(s: &str) -> Option<i64> {
    if s == "24:00:00" {
        return Some(86_400_000_000);
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").or_else(|_| NaiveTime::parse_from_str(s, "%H:%M")).ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + micros_of_nanos(t.nanosecond()))
}

/// Sub-microsecond digits round half up, as PostgreSQL's input does.
fn micros_of_nanos(nanos: u32) -> i64 {
    i64::from(nanos.min(999_999_999)).saturating_add(500) / 1000
}

fn timestamp(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let t = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    let utc = t.and_utc();
    utc.timestamp().checked_mul(1_000_000)?.checked_add(micros_of_nanos(utc.timestamp_subsec_nanos()))
}

fn timestamptz(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    t.timestamp().checked_mul(1_000_000)?.checked_add(micros_of_nanos(t.timestamp_subsec_nanos()))
}

/// ISO 8601 durations as `src/value.rs` prints them: `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`,
/// each number with its own optional sign (PostgreSQL keeps months, days and time apart).
fn interval(s: &str) -> Option<Interval> {
    let rest = s.strip_prefix('P')?;
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut out = Interval { months: 0, days: 0, micros: 0 };
    let mut any = false;
    for (number, unit) in designators(date_part)? {
        let n: i32 = number.parse().ok()?;
        any = true;
        match unit {
            'Y' => out.months = out.months.checked_add(n.checked_mul(12)?)?,
            'M' => out.months = out.months.checked_add(n)?,
            'W' => out.days = out.days.checked_add(n.checked_mul(7)?)?,
            'D' => out.days = out.days.checked_add(n)?,
            _ => return None,
        }
    }
    for (number, unit) in designators(time_part.unwrap_or(""))? {
        any = true;
        let micros: i64 = match unit {
            'H' => number.parse::<i64>().ok()?.checked_mul(3_600_000_000)?,
            'M' => number.parse::<i64>().ok()?.checked_mul(60_000_000)?,
            'S' => seconds_micros(number)?,
            _ => return None,
        };
        out.micros = out.micros.checked_add(micros)?;
    }
    any.then_some(out)
}

/// `"1Y-2M"` → `[("1", 'Y'), ("-2", 'M')]`.
fn designators(s: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            let number = &s[start..i];
            if number.is_empty() || number == "-" {
                return None;
            }
            out.push((number, c));
            start = i + 1;
        }
    }
    (start == s.len()).then_some(out)
}

fn seconds_micros(number: &str) -> Option<i64> {
    let negative = number.starts_with('-');
    let unsigned = number.strip_prefix('-').unwrap_or(number);
    let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 6 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
    let micros = whole.checked_mul(1_000_000)?.checked_add(frac)?;
    Some(if negative { -micros } else { micros })
}

fn bytes(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.strip_prefix("\\x")?).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canonical(json: Json, ty: ColumnType) -> String {
        value_of(&json, &ty).unwrap().to_canonical_string()
    }

    #[test]
    fn canonical_forms_read_back() {
        assert_eq!(canonical(json!("9007199254740993"), ColumnType::Int8), "9007199254740993");
        assert_eq!(canonical(json!(42), ColumnType::Int8), "42");
        assert_eq!(canonical(json!("-12.50"), ColumnType::Numeric), "-12.50");
        assert_eq!(canonical(json!(7), ColumnType::Numeric), "7");
        assert_eq!(canonical(json!("NaN"), ColumnType::Numeric), "NaN");
        assert_eq!(canonical(json!("2024-02-29"), ColumnType::Date), "2024-02-29");
        assert_eq!(canonical(json!("13:45:00.5"), ColumnType::Time), "13:45:00.5");
        assert_eq!(canonical(json!("2024-05-31T13:45:00.25"), ColumnType::Timestamp), "2024-05-31T13:45:00.25");
        assert_eq!(canonical(json!("2024-05-31T13:45:00+02:00"), ColumnType::TimestampTz), "2024-05-31T11:45:00Z");
        assert_eq!(canonical(json!("2024-05-31 13:45:00Z"), ColumnType::TimestampTz), "2024-05-31T13:45:00Z");
        assert_eq!(canonical(json!("P1Y2M3DT4H5M6.789S"), ColumnType::Interval), "P1Y2M3DT4H5M6.789S");
        assert_eq!(canonical(json!("PT-1.5S"), ColumnType::Interval), "PT-1.5S");
        assert_eq!(canonical(json!("P2W"), ColumnType::Interval), "P14D");
        assert_eq!(canonical(json!("\\x01ff"), ColumnType::Bytes), "\\x01ff");
        assert_eq!(canonical(json!("infinity"), ColumnType::TimestampTz), "infinity");
    }

    #[test]
    fn mismatches_are_refused() {
        let bad = |j: Json, ty: ColumnType| value_of(&j, &ty).is_err();
        assert!(bad(json!(40000), ColumnType::Int2));
        assert!(bad(json!("1.5"), ColumnType::Int4));
        assert!(bad(json!("1e5"), ColumnType::Numeric));
        assert!(bad(json!(1e21), ColumnType::Numeric));
        assert!(bad(json!(3), ColumnType::Text));
        assert!(bad(json!("2024-05-31T13:45:00"), ColumnType::TimestampTz), "a zone is required");
        assert!(bad(json!("2024-02-30"), ColumnType::Date));
        assert!(bad(json!("P"), ColumnType::Interval));
        assert!(bad(json!("PT"), ColumnType::Interval));
        assert!(bad(json!("1 day"), ColumnType::Interval));
        assert!(bad(json!("{}"), ColumnType::Json));
        assert!(bad(json!(null), ColumnType::Bool));
    }
}
