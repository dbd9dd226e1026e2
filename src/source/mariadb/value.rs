//! MariaDB values into opslive's [`Value`]s, from both places they come from: the binlog's
//! storage forms (as mysql_common reads them) and the snapshot's text protocol. Both paths
//! give the same `Value` for the same stored value — the exactness tests compare them.
//!
//! Zero dates (`0000-00-00`, and dates with a zero month or day) have no calendar meaning:
//! they become NULL and are counted, as Debezium does.

use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::Value as My;

use super::catalog::Kind;
use crate::registry::ColumnType;
use crate::value::{Interval, Value, days_from_civil};

/// Zero dates read as NULL since start, for the log and metrics.
pub static ZERO_DATES: AtomicU64 = AtomicU64::new(0);

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn zero_date() -> Value {
    if ZERO_DATES.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(
            "a MariaDB zero date (0000-00-00 or a zero month or day) is read as NULL; further ones are counted only"
        );
    }
    Value::Null
}

/// A value from a binlog row image.
pub fn from_binlog(kind: &Kind, v: My) -> Result<Value, String> {
    Ok(match (kind, v) {
        (_, My::NULL) => Value::Null,
        (Kind::Int(ty), My::Int(i)) => int(ty, i as i128)?,
        (Kind::Int(ty), My::UInt(u)) => int(ty, u as i128)?,
        (Kind::MediumInt, My::Int(i)) => Value::Int4((if i >= 1 << 23 { i - (1 << 24) } else { i }) as i32),
        (Kind::Decimal, My::Bytes(b)) => Value::Numeric(utf8(b)?.into()),
        (Kind::Float, My::Float(f)) => Value::Float4(f),
        (Kind::Double, My::Double(d)) => Value::Float8(d),
        (Kind::Text { latin1 }, My::Bytes(b)) => Value::Text(text(b, *latin1)?.into()),
        (Kind::Json, My::Bytes(b)) => json(utf8(b)?)?,
        (Kind::Enum(members), My::Int(i)) => match i {
            // 0 is the empty string MariaDB stores for a value that was not a member.
            0 => Value::text(""),
            i => members
                .get(i as usize - 1)
                .map(|m| Value::text(m))
                .ok_or_else(|| format!("enum index {i} out of range"))?,
        },
        (Kind::Set(members), My::Bytes(b)) => {
            let mut bits = 0u64;
            for (i, byte) in b.iter().enumerate().take(8) {
                bits |= (*byte as u64) << (8 * i);
            }
            let names: Vec<&str> =
                members.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, m)| &**m).collect();
            Value::text(&names.join(","))
        }
        (Kind::Date, My::Date(y, m, d, ..)) => date(y as i32, m as u32, d as u32),
        (Kind::DateTime, My::Date(y, m, d, h, mi, s, us)) => match date(y as i32, m as u32, d as u32) {
            Value::Date(days) => Value::Timestamp(
                days as i64 * MICROS_PER_DAY + ((h as i64 * 60 + mi as i64) * 60 + s as i64) * 1_000_000 + us as i64,
            ),
            _ => Value::Null,
        },
        (Kind::Timestamp, My::Bytes(b)) => {
            // "seconds[.micros]" since the epoch, UTC; 0 is the zero timestamp.
            let t = utf8(b)?;
            let (s, us) = t.split_once('.').unwrap_or((&t, "0"));
            let s: i64 = s.parse().map_err(|_| format!("bad TIMESTAMP {t}"))?;
            let us: i64 = format!("{us:0<6}").parse().map_err(|_| format!("bad TIMESTAMP {t}"))?;
            if s == 0 && us == 0 { zero_date() } else { Value::TimestampTz(s * 1_000_000 + us) }
        }
        (Kind::Time, My::Time(neg, days, h, m, s, us)) => {
            let micros = (((days as i64 * 24 + h as i64) * 60 + m as i64) * 60 + s as i64) * 1_000_000 + us as i64;
            Value::Interval(Interval { months: 0, days: 0, micros: if neg { -micros } else { micros } })
        }
        (Kind::Year, My::Bytes(b)) => {
            // mysql_common adds 1900 to the stored byte; YEAR 0000 is stored as 0.
            let y: i16 = utf8(b)?.parse().map_err(|_| "bad YEAR".to_string())?;
            Value::Int2(if y == 1900 { 0 } else { y })
        }
        (Kind::Bytes, My::Bytes(b)) => Value::Bytes(b.into()),
        (Kind::Bit(n), My::Bytes(b)) => bits(*n, &b),
        (kind, v) => return Err(format!("a {kind:?} column sent {v:?}")),
    })
}

/// A value from the snapshot's text protocol (`SET NAMES utf8mb4`, `time_zone = '+00:00'`).
pub fn from_text(kind: &Kind, v: My) -> Result<Value, String> {
    let b = match v {
        My::NULL => return Ok(Value::Null),
        My::Bytes(b) => b,
        other => return Err(format!("the text protocol sent {other:?}")),
    };
    if let Kind::Bytes = kind {
        return Ok(Value::Bytes(b.into()));
    }
    if let Kind::Bit(n) = kind {
        return Ok(bits(*n, &b));
    }
    let t = utf8(b)?;
    let bad = || format!("cannot read {kind:?} from {t:?}");
    Ok(match kind {
        Kind::Int(ty) => int(ty, t.parse::<i128>().map_err(|_| bad())?)?,
        Kind::MediumInt => Value::Int4(t.parse().map_err(|_| bad())?),
        Kind::Decimal => Value::Numeric(t.as_str().into()),
        Kind::Float => Value::Float4(t.parse().map_err(|_| bad())?),
        Kind::Double => Value::Float8(t.parse().map_err(|_| bad())?),
        Kind::Text { .. } | Kind::Enum(_) | Kind::Set(_) => Value::Text(t.into()),
        Kind::Json => json(t)?,
        Kind::Date => {
            let (y, m, d) = ymd(&t).ok_or_else(bad)?;
            date(y, m, d)
        }
        Kind::DateTime | Kind::Timestamp => {
            let (day, time) = t.split_once(' ').ok_or_else(bad)?;
            let (y, m, d) = ymd(day).ok_or_else(bad)?;
            match date(y, m, d) {
                Value::Date(days) => {
                    let micros = days as i64 * MICROS_PER_DAY + clock(time).ok_or_else(bad)?;
                    if let Kind::Timestamp = kind { Value::TimestampTz(micros) } else { Value::Timestamp(micros) }
                }
                _ => Value::Null,
            }
        }
        Kind::Time => {
            let (neg, rest) = match t.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, t.as_str()),
            };
            let micros = clock(rest).ok_or_else(bad)?;
            Value::Interval(Interval { months: 0, days: 0, micros: if neg { -micros } else { micros } })
        }
        Kind::Year => Value::Int2(t.parse().map_err(|_| bad())?),
        Kind::Bytes | Kind::Bit(_) => unreachable!("handled above"),
    })
}

fn int(ty: &ColumnType, i: i128) -> Result<Value, String> {
    let out = |_| format!("{i} does not fit {ty:?}");
    Ok(match ty {
        ColumnType::Int2 => Value::Int2(i16::try_from(i).map_err(out)?),
        ColumnType::Int4 => Value::Int4(i32::try_from(i).map_err(out)?),
        ColumnType::Int8 => Value::Int8(i64::try_from(i).map_err(out)?),
        // BIGINT UNSIGNED: a value above 2^63 that arrives as a negative i64 (no signedness
        // metadata) is its two's complement.
        _ => Value::Numeric(if i < 0 { (i as i64 as u64).to_string() } else { i.to_string() }.into()),
    })
}

fn bits(n: u32, b: &[u8]) -> Value {
    let v = b.iter().fold(0u64, |acc, byte| (acc << 8) | *byte as u64);
    match n {
        1 => Value::Bool(v != 0),
        64 => Value::Numeric(v.to_string().into()),
        _ => Value::Int8(v as i64),
    }
}

fn date(y: i32, m: u32, d: u32) -> Value {
    match days_from_civil(y, m, d) {
        Some(days) if y != 0 || m != 0 || d != 0 => Value::Date(days),
        _ => zero_date(),
    }
}

fn ymd(t: &str) -> Option<(i32, u32, u32)> {
    let mut p = t.splitn(3, '-');
    Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?, p.next()?.parse().ok()?))
}

/// `H+:MM:SS[.ffffff]` in microseconds.
fn clock(t: &str) -> Option<i64> {
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut p = hms.splitn(3, ':');
    let (h, m, s): (i64, i64, i64) = (p.next()?.parse().ok()?, p.next()?.parse().ok()?, p.next()?.parse().ok()?);
    let us: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}")[..6].parse().ok()? };
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + us)
}

fn utf8(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))
}

fn text(b: Vec<u8>, latin1: bool) -> Result<String, String> {
    if latin1 { Ok(b.iter().map(|&c| cp1252(c)).collect()) } else { utf8(b) }
}

fn json(t: String) -> Result<Value, String> {
    serde_json::from_str::<&serde_json::value::RawValue>(&t).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(Value::Json(t.into()))
}

/// MariaDB's `latin1` is Windows-1252, with the five bytes it leaves undefined passed through.
fn cp1252(c: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    match c {
        0x80..=0x9F => HIGH[(c - 0x80) as usize],
        c => c as char,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn binlog_and_text_forms_give_the_same_values() {
        let pairs: Vec<(Kind, My, &str)> = vec![
            (Kind::Int(ColumnType::Numeric), My::UInt(u64::MAX), "18446744073709551615"),
            (Kind::Int(ColumnType::Numeric), My::Int(-1), "18446744073709551615"),
            (Kind::Int(ColumnType::Int2), My::Int(-128), "-128"),
            (Kind::MediumInt, My::Int(8_388_608), "-8388608"),
            (Kind::MediumInt, My::Int(16_777_215), "-1"),
            (Kind::MediumInt, My::Int(8_388_607), "8388607"),
            (Kind::Decimal, My::Bytes(b"-12.50".to_vec()), "-12.50"),
            (Kind::Date, My::Date(2024, 2, 29, 0, 0, 0, 0), "2024-02-29"),
            (Kind::DateTime, My::Date(1969, 12, 31, 23, 59, 59, 500_000), "1969-12-31 23:59:59.500000"),
            (Kind::Timestamp, My::Bytes(b"1700000000.000123".to_vec()), "2023-11-14 22:13:20.000123"),
            (Kind::Time, My::Time(true, 34, 22, 59, 59, 0), "-838:59:59.000000"),
            (Kind::Year, My::Bytes(b"1900".to_vec()), "0000"),
            (Kind::Year, My::Bytes(b"2155".to_vec()), "2155"),
            (Kind::Bit(1), My::Bytes(vec![1]), "\u{1}"),
            (Kind::Json, My::Bytes(br#"{"a": 1.10}"#.to_vec()), r#"{"a": 1.10}"#),
        ];
        for (kind, binlog, text) in pairs {
            let a = from_binlog(&kind, binlog.clone()).unwrap();
            let b = from_text(&kind, My::Bytes(text.as_bytes().to_vec())).unwrap();
            assert_eq!(a, b, "{kind:?}: {binlog:?} vs {text:?}");
        }
    }

    #[test]
    fn zero_dates_are_null_and_counted() {
        let before = ZERO_DATES.load(Ordering::Relaxed);
        assert_eq!(from_binlog(&Kind::Date, My::Date(0, 0, 0, 0, 0, 0, 0)).unwrap(), Value::Null);
        assert_eq!(from_text(&Kind::DateTime, My::Bytes(b"2024-00-10 00:00:00".to_vec())).unwrap(), Value::Null);
        assert!(ZERO_DATES.load(Ordering::Relaxed) >= before + 2);
    }

    #[test]
    fn enums_sets_and_latin1_decode_to_their_text() {
        let members: Arc<[Arc<str>]> = vec![Arc::from("open"), Arc::from("closed"), Arc::from("spam")].into();
        assert_eq!(from_binlog(&Kind::Enum(members.clone()), My::Int(2)).unwrap(), Value::text("closed"));
        assert_eq!(from_binlog(&Kind::Set(members), My::Bytes(vec![0b101])).unwrap(), Value::text("open,spam"));
        assert_eq!(from_binlog(&Kind::Text { latin1: true }, My::Bytes(vec![0x80, 0xE9])).unwrap(), Value::text("€é"));
        assert!(from_binlog(&Kind::Text { latin1: false }, My::Bytes(vec![0xFF])).is_err());
        assert!(from_binlog(&Kind::Date, My::Int(3)).is_err(), "a mismatched storage form is an error, not a panic");
    }
}
