//! PostgreSQL's text output → [`Value`], one parser for the snapshot (COPY text) and the stream
//! (pgoutput text tuples), so both give identical values.
//!
//! The connections pin `DateStyle=ISO`, `IntervalStyle=iso_8601`, `TimeZone=UTC`,
//! `extra_float_digits=3` and `bytea_output=hex`, so each type has exactly one text form here.

use crate::registry::ColumnType;
use crate::value::{Interval, Value, days_from_civil};

/// Session settings every source connection pins (startup `options`).
pub const PINNED_OPTIONS: &str = "-c DateStyle=ISO,YMD -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex -c client_encoding=UTF8";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot read {text:?} as {ty}")]
pub struct ValueError {
    pub ty: String,
    /// At most 64 characters of the offending text.
    pub text: String,
}

fn err(ty: &ColumnType, text: &str) -> ValueError {
    ValueError { ty: format!("{ty:?}"), text: text.chars().take(64).collect() }
}

/// The column type for a PostgreSQL type OID (after resolving domains to their base type).
/// `type_name` names unknown types; `element` is the element type of an array type.
pub fn column_type(oid: u32, type_name: &str, element: Option<(u32, &str)>) -> ColumnType {
    match oid {
        16 => ColumnType::Bool,
        21 => ColumnType::Int2,
        23 => ColumnType::Int4,
        20 | 26 | 28 => ColumnType::Int8, // int8, oid, xid
        700 => ColumnType::Float4,
        701 => ColumnType::Float8,
        1700 => ColumnType::Numeric,
        25 | 1043 | 1042 | 19 | 18 => ColumnType::Text,
        2950 => ColumnType::Uuid,
        1082 => ColumnType::Date,
        1083 => ColumnType::Time,
        1114 => ColumnType::Timestamp,
        1184 => ColumnType::TimestampTz,
        1186 => ColumnType::Interval,
        114 | 3802 => ColumnType::Json,
        17 => ColumnType::Bytes,
        _ => match element {
            Some((eoid, ename)) => ColumnType::Array(Box::new(column_type(eoid, ename, None))),
            None => ColumnType::Other(type_name.into()),
        },
    }
}

/// Parses one non-NULL value in PostgreSQL text form.
pub fn parse(ty: &ColumnType, text: &str) -> Result<Value, ValueError> {
    let bad = || err(ty, text);
    Ok(match ty {
        ColumnType::Bool => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(bad()),
        },
        ColumnType::Int2 => Value::Int2(text.parse().map_err(|_| bad())?),
        ColumnType::Int4 => Value::Int4(text.parse().map_err(|_| bad())?),
        ColumnType::Int8 => Value::Int8(text.parse().map_err(|_| bad())?),
        ColumnType::Float4 => Value::Float4(parse_float(text).ok_or_else(bad)? as f32),
        ColumnType::Float8 => Value::Float8(parse_float(text).ok_or_else(bad)?),
        ColumnType::Numeric => {
            if is_numeric(text) {
                Value::Numeric(text.into())
            } else {
                return Err(bad());
            }
        }
        ColumnType::Text => Value::Text(text.into()),
        ColumnType::Uuid => Value::Uuid(text.parse().map_err(|_| bad())?),
        ColumnType::Date => Value::Date(parse_date(text).ok_or_else(bad)?),
        ColumnType::Time => Value::Time(parse_time(text).ok_or_else(bad)?),
        ColumnType::Timestamp => Value::Timestamp(parse_timestamp(text, false).ok_or_else(bad)?),
        ColumnType::TimestampTz => Value::TimestampTz(parse_timestamp(text, true).ok_or_else(bad)?),
        ColumnType::Interval => Value::Interval(parse_interval(text).ok_or_else(bad)?),
        ColumnType::Json => {
            serde_json::from_str::<&serde_json::value::RawValue>(text).map_err(|_| bad())?;
            Value::Json(text.into())
        }
        ColumnType::Bytes => {
            let hex = text.strip_prefix("\\x").ok_or_else(bad)?;
            Value::Bytes(hex::decode(hex).map_err(|_| bad())?.into())
        }
        ColumnType::Array(element) => parse_array(element, text).ok_or_else(bad)??,
        ColumnType::Other(name) => Value::other(name.clone(), text),
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn is_numeric(text: &str) -> bool {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return true;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn two(s: &str) -> Option<u32> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

/// `YYYY-MM-DD[ BC]` → days since 1970-01-01; ±infinity as `i32::MAX`/`MIN`.
fn parse_date(text: &str) -> Option<i32> {
    match text {
        "infinity" => return Some(i32::MAX),
        "-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    ymd_days(body, bc)
}

fn ymd_days(body: &str, bc: bool) -> Option<i32> {
    let mut parts = body.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month = two(parts.next()?)?;
    let day = two(parts.next()?)?;
    // 1 BC is astronomical year 0.
    let year = if bc { 1 - year } else { year };
    days_from_civil(year, month, day)
}

/// `HH:MM:SS[.ffffff]` → microseconds since midnight.
fn parse_time(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h = i64::from(two(parts.next()?)?);
    let m = i64::from(two(parts.next()?)?);
    let (s, frac) = parse_seconds(parts.next()?)?;
    if h > 24 || m > 59 || s > 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + frac)
}

/// `SS[.ffffff]` → (seconds, microseconds).
fn parse_seconds(text: &str) -> Option<(i64, i64)> {
    let (s, frac) = text.split_once('.').unwrap_or((text, ""));
    let s: i64 = two(s)?.into();
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((s, micros(frac)?))
}

/// Up to six fraction digits (checked by the caller) → microseconds, without a padded copy:
/// timestamps are parsed once per column of every row streamed.
fn micros(frac: &str) -> Option<i64> {
    if frac.is_empty() {
        return Some(0);
    }
    let digits: i64 = frac.parse().ok()?;
    Some(digits * 10i64.pow(6 - frac.len() as u32))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]` → microseconds since the Unix epoch (UTC
/// for `timestamptz`).
fn parse_timestamp(text: &str, with_zone: bool) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, rest) = body.split_once(' ')?;
    let days = i64::from(ymd_days(date, bc)?);
    let (time, offset_secs) = if with_zone {
        let at = rest.rfind(['+', '-'])?;
        (&rest[..at], parse_offset(&rest[at..])?)
    } else {
        (rest, 0)
    };
    let micros = parse_time(time)?;
    Some(days * 86_400_000_000 + micros - offset_secs * 1_000_000)
}

/// `+HH[:MM[:SS]]` → seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let mut secs = 0;
    for (i, part) in text[1..].split(':').enumerate() {
        let unit = [3600, 60, 1].get(i)?;
        secs += i64::from(two(part)?) * unit;
    }
    Some(sign * secs)
}

/// ISO 8601 as `IntervalStyle=iso_8601` prints it: `P1Y2M3DT4H5M6.789S`, each field signed.
fn parse_interval(text: &str) -> Option<Interval> {
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut out = Interval { months: 0, days: 0, micros: 0 };
    for (num, unit) in fields(date)? {
        let n: i32 = num.parse().ok()?;
        match unit {
            'Y' => out.months = out.months.checked_add(n.checked_mul(12)?)?,
            'M' => out.months = out.months.checked_add(n)?,
            'W' => out.days = out.days.checked_add(n.checked_mul(7)?)?,
            'D' => out.days = out.days.checked_add(n)?,
            _ => return None,
        }
    }
    for (num, unit) in fields(time)? {
        let micros = match unit {
            'H' => num.parse::<i64>().ok()?.checked_mul(3_600_000_000)?,
            'M' => num.parse::<i64>().ok()?.checked_mul(60_000_000)?,
            'S' => {
                let negative = num.starts_with('-');
                let digits = num.trim_start_matches('-');
                let (s, frac) = digits.split_once('.').unwrap_or((digits, ""));
                if frac.len() > 6 {
                    return None;
                }
                let s: i64 = s.parse().ok()?;
                let f = micros(frac)?;
                let v = s.checked_mul(1_000_000)?.checked_add(f)?;
                if negative { -v } else { v }
            }
            _ => return None,
        };
        out.micros = out.micros.checked_add(micros)?;
    }
    Some(out)
}

/// Splits `1Y-2M3D` into (number, unit) pairs.
fn fields(s: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            if i == start {
                return None;
            }
            out.push((&s[start..i], c));
            start = i + 1;
        }
    }
    (start == s.len()).then_some(out)
}

/// Parses an array literal (`{1,2,NULL}`, `{"a b","c\"d"}`, nested, with an optional
/// `[lo:hi]=` dimension prefix). The outer `Option` is a syntax error, the inner `Result` an
/// element that is not of its type.
fn parse_array(element: &ColumnType, text: &str) -> Option<Result<Value, ValueError>> {
    let body = match text.strip_prefix('[') {
        Some(_) => &text[text.find('=')? + 1..],
        None => text,
    };
    let mut chars = body.char_indices().peekable();
    let value = parse_array_level(element, body, &mut chars)?;
    if chars.next().is_some() {
        return None;
    }
    Some(value)
}

fn parse_array_level(
    element: &ColumnType,
    text: &str,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Option<Result<Value, ValueError>> {
    if chars.next()?.1 != '{' {
        return None;
    }
    let mut items = Vec::new();
    if chars.peek()?.1 == '}' {
        chars.next();
        return Some(Ok(Value::Array(items.into())));
    }
    loop {
        let item = match chars.peek()?.1 {
            '{' => parse_array_level(element, text, chars)?,
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()?.1 {
                        '\\' => s.push(chars.next()?.1),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                parse(element, &s)
            }
            _ => {
                let start = chars.peek()?.0;
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                let raw = text[start..end].trim();
                if raw.eq_ignore_ascii_case("NULL") { Ok(Value::Null) } else { parse(element, raw) }
            }
        };
        match item {
            Ok(v) => items.push(v),
            Err(e) => return Some(Err(e)),
        }
        match chars.next()?.1 {
            ',' => continue,
            '}' => return Some(Ok(Value::Array(items.into()))),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ty: ColumnType, s: &str) -> Value {
        parse(&ty, s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn json(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(p(ColumnType::Bool, "t"), Value::Bool(true));
        assert_eq!(p(ColumnType::Int8, "-9223372036854775808"), Value::Int8(i64::MIN));
        assert!(matches!(p(ColumnType::Float8, "NaN"), Value::Float8(v) if v.is_nan()));
        assert_eq!(p(ColumnType::Float8, "-Infinity"), Value::Float8(f64::NEG_INFINITY));
        assert_eq!(p(ColumnType::Float4, "1.1"), Value::Float4(1.1));
        assert_eq!(
            json(&p(ColumnType::Numeric, "123456789012345678901234567890.000000001")),
            "\"123456789012345678901234567890.000000001\""
        );
        assert_eq!(json(&p(ColumnType::Numeric, "NaN")), "\"NaN\"");
        assert!(parse(&ColumnType::Numeric, "1e5").is_err());
        assert!(parse(&ColumnType::Int4, "12x").is_err());
        assert_eq!(
            json(&p(ColumnType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""
        );
        assert_eq!(json(&p(ColumnType::Bytes, "\\xdeadbeef")), "\"\\\\xdeadbeef\"");
        assert_eq!(json(&p(ColumnType::Json, "{\"a\": [1, 2.50]}")), "{\"a\": [1, 2.50]}");
        assert!(parse(&ColumnType::Json, "{").is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(json(&p(ColumnType::Date, "2024-02-29")), "\"2024-02-29\"");
        assert_eq!(json(&p(ColumnType::Date, "0044-03-15 BC")), "\"-0043-03-15\"");
        assert_eq!(p(ColumnType::Date, "infinity"), Value::Date(i32::MAX));
        assert_eq!(json(&p(ColumnType::Time, "23:59:59.5")), "\"23:59:59.5\"");
        assert_eq!(json(&p(ColumnType::Time, "24:00:00")), "\"24:00:00\"");
        assert_eq!(json(&p(ColumnType::Timestamp, "2024-01-02 03:04:05.000006")), "\"2024-01-02T03:04:05.000006\"");
        assert_eq!(json(&p(ColumnType::TimestampTz, "2024-01-02 03:04:05+00")), "\"2024-01-02T03:04:05Z\"");
        assert_eq!(json(&p(ColumnType::TimestampTz, "2024-01-02 03:04:05.25+05:30")), "\"2024-01-01T21:34:05.25Z\"");
        assert_eq!(json(&p(ColumnType::TimestampTz, "1900-01-01 00:00:00-00:01:15")), "\"1900-01-01T00:01:15Z\"");
        assert_eq!(p(ColumnType::TimestampTz, "-infinity"), Value::TimestampTz(i64::MIN));
        assert!(parse(&ColumnType::Timestamp, "2024-13-01 00:00:00").is_err());
    }

    #[test]
    fn intervals() {
        let i = |s| match p(ColumnType::Interval, s) {
            Value::Interval(i) => i,
            _ => unreachable!(),
        };
        assert_eq!(i("PT0S"), Interval { months: 0, days: 0, micros: 0 });
        assert_eq!(i("P1Y2M3DT4H5M6.789S"), Interval { months: 14, days: 3, micros: 14_706_789_000 });
        assert_eq!(i("P-1Y-2M3DT-4H-5M-6.5S"), Interval { months: -14, days: 3, micros: -14_706_500_000 });
        assert_eq!(json(&p(ColumnType::Interval, "P-1Y-2M3DT-4H-5M-6.5S")), "\"P-1Y-2M3DT-4H-5M-6.5S\"");
    }

    #[test]
    fn arrays() {
        let ints = ColumnType::Array(Box::new(ColumnType::Int4));
        assert_eq!(json(&p(ints.clone(), "{1,2,NULL}")), "[1,2,null]");
        assert_eq!(json(&p(ints.clone(), "{{1,2},{3,4}}")), "[[1,2],[3,4]]");
        assert_eq!(json(&p(ints.clone(), "[0:1]={7,8}")), "[7,8]");
        assert_eq!(json(&p(ints.clone(), "{}")), "[]");
        let texts = ColumnType::Array(Box::new(ColumnType::Text));
        assert_eq!(json(&p(texts.clone(), r#"{"a b","c\"d",NULL,"NULL",x}"#)), r#"["a b","c\"d",null,"NULL","x"]"#);
        assert!(parse(&ints, "{1,x}").is_err());
        assert!(parse(&ints, "{1,2").is_err());
    }

    #[test]
    fn unknown_types_keep_name_and_text() {
        let v = p(ColumnType::Other("public.mood".into()), "happy");
        assert_eq!(v, Value::other("public.mood".into(), "happy"));
    }
}
