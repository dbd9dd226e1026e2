//! PostgreSQL's binary output (each type's `send` function, what pgoutput sends with
//! `binary 'true'`) → [`Value`], giving exactly the value [`super::text::parse`] gives for the
//! text form of the same datum.
//!
//! Binary tuples spare the walsender each type's text output function (numeric and timestamp
//! output are the dear ones) and spare opslive parsing digits. The server, not opslive, decides
//! per type whether a value goes out in binary (any type with a send function does), so a
//! source streams in binary only when every watched column's type is [`supported`] here; unknown
//! types ([`ColumnType::Other`]) keep their text, which no binary form can give back.
//!
//! Layouts follow the send functions in PostgreSQL's source (`numeric_send`, `timestamp_send`,
//! `interval_send`, `array_send`, `jsonb_send`, …): big-endian, fixed widths, no alignment.

use std::fmt::Write as _;
use std::sync::Arc;

use ecow::EcoString;

use super::text::{ValueError, column_type};
use crate::registry::ColumnType;
use crate::value::{Interval, PG_EPOCH_OFFSET_MICROS, Value};

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_DAYS: i32 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Whether values of `ty` can be read from their binary form.
pub fn supported(ty: &ColumnType) -> bool {
    match ty {
        ColumnType::Other(_) => false,
        ColumnType::Array(element) => supported(element),
        _ => true,
    }
}

fn err(ty: &ColumnType, bytes: &[u8]) -> ValueError {
    // The first bytes in hex: enough to recognise the value, never a whole row's data.
    ValueError { ty: format!("{ty:?} (binary)"), text: format!("\\x{}", hex::encode(&bytes[..bytes.len().min(31)])) }
}

/// Parses one non-NULL value in PostgreSQL binary form.
pub fn parse(ty: &ColumnType, bytes: &[u8]) -> Result<Value, ValueError> {
    let bad = || err(ty, bytes);
    Ok(match ty {
        ColumnType::Bool => match bytes {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return Err(bad()),
        },
        ColumnType::Int2 => Value::Int2(i16::from_be_bytes(exact(bytes).ok_or_else(bad)?)),
        ColumnType::Int4 => Value::Int4(i32::from_be_bytes(exact(bytes).ok_or_else(bad)?)),
        // int8, and oid and xid, which the text path reads as int8 too: unsigned 32 bits.
        ColumnType::Int8 => match bytes.len() {
            8 => Value::Int8(i64::from_be_bytes(exact(bytes).ok_or_else(bad)?)),
            4 => Value::Int8(u32::from_be_bytes(exact(bytes).ok_or_else(bad)?).into()),
            _ => return Err(bad()),
        },
        // One NaN, as the text path has (it reads `NaN`, whatever bits the server held).
        ColumnType::Float4 => {
            let v = f32::from_be_bytes(exact(bytes).ok_or_else(bad)?);
            Value::Float4(if v.is_nan() { f32::NAN } else { v })
        }
        ColumnType::Float8 => {
            let v = f64::from_be_bytes(exact(bytes).ok_or_else(bad)?);
            Value::Float8(if v.is_nan() { f64::NAN } else { v })
        }
        ColumnType::Numeric => Value::Numeric(numeric(bytes).ok_or_else(bad)?.into()),
        ColumnType::Text => Value::Text(text(bytes).ok_or_else(bad)?),
        ColumnType::Uuid => Value::Uuid(uuid::Uuid::from_bytes(exact(bytes).ok_or_else(bad)?)),
        ColumnType::Date => Value::Date(date(i32::from_be_bytes(exact(bytes).ok_or_else(bad)?)).ok_or_else(bad)?),
        ColumnType::Time => {
            let micros = i64::from_be_bytes(exact(bytes).ok_or_else(bad)?);
            // 24:00:00 is a time of day in PostgreSQL.
            if !(0..=MICROS_PER_DAY).contains(&micros) {
                return Err(bad());
            }
            Value::Time(micros)
        }
        ColumnType::Timestamp => {
            Value::Timestamp(timestamp(i64::from_be_bytes(exact(bytes).ok_or_else(bad)?)).ok_or_else(bad)?)
        }
        ColumnType::TimestampTz => {
            Value::TimestampTz(timestamp(i64::from_be_bytes(exact(bytes).ok_or_else(bad)?)).ok_or_else(bad)?)
        }
        ColumnType::Interval => {
            let b: [u8; 16] = exact(bytes).ok_or_else(bad)?;
            let [t0, t1, t2, t3, t4, t5, t6, t7, d0, d1, d2, d3, m0, m1, m2, m3] = b;
            Value::Interval(Interval {
                micros: i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
                days: i32::from_be_bytes([d0, d1, d2, d3]),
                months: i32::from_be_bytes([m0, m1, m2, m3]),
            })
        }
        ColumnType::Json => {
            // json is its text; jsonb is a format version (1) and then its text. Both map to
            // one column type, and no JSON text starts with byte 1 (a control character).
            let body = match bytes {
                [1, rest @ ..] => rest,
                _ => bytes,
            };
            let s = std::str::from_utf8(body).map_err(|_| bad())?;
            serde_json::from_str::<&serde_json::value::RawValue>(s).map_err(|_| bad())?;
            Value::Json(s.into())
        }
        ColumnType::Bytes => Value::Bytes(Arc::from(bytes)),
        ColumnType::Array(element) => array(element, bytes).ok_or_else(bad)??,
        ColumnType::Other(_) => return Err(bad()),
    })
}

/// The bytes as a fixed-size array, when there are exactly that many.
fn exact<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

/// Text types' UTF-8; a single byte that is not text is a `"char"`, printed as `charout` does.
fn text(bytes: &[u8]) -> Option<EcoString> {
    match bytes {
        // `"char"` 0 prints as nothing; above 127 as `\ooo` (PostgreSQL 15+). No text value is
        // a lone byte above 127 (not UTF-8) or a NUL (refused by PostgreSQL).
        [0] => Some(EcoString::new()),
        [b] if *b >= 0x80 => Some(format!("\\{:03o}", b).into()),
        _ => std::str::from_utf8(bytes).ok().map(EcoString::from),
    }
}

/// Days since 2000-01-01 → days since 1970-01-01, keeping the infinities; a day the text
/// path cannot spell (beyond chrono's calendar) is refused as it is there.
fn date(days: i32) -> Option<i32> {
    match days {
        i32::MAX | i32::MIN => Some(days),
        d => {
            let d = d.checked_add(PG_EPOCH_OFFSET_DAYS)?;
            chrono::NaiveDate::from_num_days_from_ce_opt(d.checked_add(719_163)?)?;
            Some(d)
        }
    }
}

/// Microseconds since 2000-01-01 → since 1970-01-01, keeping the infinities.
fn timestamp(micros: i64) -> Option<i64> {
    match micros {
        i64::MAX | i64::MIN => Some(micros),
        m => {
            let m = m.checked_add(PG_EPOCH_OFFSET_MICROS)?;
            let days = i32::try_from(m.div_euclid(MICROS_PER_DAY)).ok()?;
            chrono::NaiveDate::from_num_days_from_ce_opt(days.checked_add(719_163)?)?;
            Some(m)
        }
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// `numeric_send`'s form — digit count, weight (of the first base-10000 digit), sign, display
/// scale, digits — printed as `numeric_out` prints it (`get_str_from_var`): exactly `dscale`
/// fraction digits, no exponent.
fn numeric(bytes: &[u8]) -> Option<String> {
    let header: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let ndigits = i16::from_be_bytes([header[0], header[1]]);
    let weight = i16::from_be_bytes([header[2], header[3]]);
    let sign = u16::from_be_bytes([header[4], header[5]]);
    let dscale = i16::from_be_bytes([header[6], header[7]]);
    let ndigits = usize::try_from(ndigits).ok()?;
    let dscale = usize::try_from(dscale).ok()?;
    let body = &bytes[8..];
    if body.len() != ndigits * 2 || dscale > 0x3FFF {
        return None;
    }
    let mut digits = Vec::with_capacity(ndigits);
    for pair in body.chunks_exact(2) {
        let d = i16::from_be_bytes([pair[0], pair[1]]);
        if !(0..10_000).contains(&d) {
            return None;
        }
        digits.push(d as u16);
    }
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return None,
    }
    let digit = |d: i32| usize::try_from(d).ok().and_then(|d| digits.get(d)).copied().unwrap_or(0);
    let weight = i32::from(weight);
    let mut out = String::with_capacity(ndigits * 4 + dscale + 3);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    // The integer part: the first group without leading zeros (but at least one digit).
    // The index of the first fraction digit.
    let mut d = weight + 1;
    if weight < 0 {
        out.push('0');
    } else {
        for group in 0..=weight {
            let g = digit(group);
            if group == 0 {
                let _ = write!(out, "{g}");
            } else {
                push_group(&mut out, g);
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let end = out.len() + dscale;
        let mut written = 0;
        while written < dscale {
            push_group(&mut out, digit(d));
            d += 1;
            written += 4;
        }
        out.truncate(end);
    }
    Some(out)
}

/// One base-10000 digit as four decimal digits.
fn push_group(out: &mut String, g: u16) {
    for div in [1000, 100, 10, 1] {
        out.push(char::from(b'0' + ((g / div) % 10) as u8));
    }
}

/// `array_send`'s form: dimensions, a has-NULLs flag, the element type, each dimension's length
/// and lower bound, then each element length-prefixed (-1: NULL), in row-major order. As the
/// text path does, lower bounds are dropped and each dimension is a nested array. The outer
/// `Option` is a malformed array, the inner `Result` an element that is not of its type.
fn array(element: &ColumnType, bytes: &[u8]) -> Option<Result<Value, ValueError>> {
    let mut r = Reader(bytes);
    let ndim = usize::try_from(r.i32()?).ok()?;
    let has_nulls = r.i32()?;
    let element_oid = r.i32()? as u32;
    if !(0..=1).contains(&has_nulls) || ndim > 6 {
        return None;
    }
    // The element type must be the one the column's type says (`text::column_type`'s mapping).
    if ndim > 0 && column_type(element_oid, "", None) != *element {
        return None;
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut total: usize = 1;
    for _ in 0..ndim {
        let len = usize::try_from(r.i32()?).ok()?;
        let _lower_bound = r.i32()?;
        total = total.checked_mul(len)?;
        dims.push(len);
    }
    if ndim == 0 {
        total = 0;
    }
    // Each element takes at least its 4-byte length: a count beyond that is malformed, and
    // must not size an allocation.
    if total > r.0.len() / 4 {
        return None;
    }
    let mut items = Vec::with_capacity(total);
    for _ in 0..total {
        let len = r.i32()?;
        if len == -1 {
            if has_nulls == 0 {
                return None;
            }
            items.push(Value::Null);
            continue;
        }
        let raw = r.take(usize::try_from(len).ok()?)?;
        match parse(element, raw) {
            Ok(v) => items.push(v),
            Err(e) => return Some(Err(e)),
        }
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Ok(nest(&dims, &mut items.into_iter())))
}

/// Nests row-major items into one array per dimension.
fn nest(dims: &[usize], items: &mut std::vec::IntoIter<Value>) -> Value {
    match dims {
        [] | [_] => Value::Array(items.take(dims.first().copied().unwrap_or(0)).collect()),
        [n, rest @ ..] => Value::Array((0..*n).map(|_| nest(rest, items)).collect()),
    }
}

/// Checked big-endian reads off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::text;

    fn numeric_bytes(weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    fn array_bytes(element_oid: u32, dims: &[i32], items: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((dims.len() as i32).to_be_bytes());
        v.extend(i32::from(items.iter().any(Option::is_none)).to_be_bytes());
        v.extend(element_oid.to_be_bytes());
        for d in dims {
            v.extend(d.to_be_bytes());
            v.extend(1i32.to_be_bytes());
        }
        for item in items {
            match item {
                None => v.extend((-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend((b.len() as i32).to_be_bytes());
                    v.extend(*b);
                }
            }
        }
        v
    }

    /// One value of each type in binary form, with its text form.
    fn samples() -> Vec<(ColumnType, Vec<u8>, &'static str)> {
        use ColumnType::*;
        let i4 = |v: i32| v.to_be_bytes().to_vec();
        vec![
            (Bool, vec![1], "t"),
            (Int2, (-2i16).to_be_bytes().to_vec(), "-2"),
            (Int4, i4(7), "7"),
            (Int8, i64::MIN.to_be_bytes().to_vec(), "-9223372036854775808"),
            (Int8, u32::MAX.to_be_bytes().to_vec(), "4294967295"),
            (Float4, 1.1f32.to_be_bytes().to_vec(), "1.1"),
            (Float8, f64::NEG_INFINITY.to_be_bytes().to_vec(), "-Infinity"),
            (Numeric, numeric_bytes(0, NUMERIC_POS, 2, &[1, 5000]), "1.50"),
            (Numeric, numeric_bytes(0, NUMERIC_POS, 2, &[]), "0.00"),
            (Numeric, numeric_bytes(-5, NUMERIC_POS, 20, &[1]), "0.00000000000000000001"),
            (Numeric, numeric_bytes(1, NUMERIC_NEG, 0, &[12, 3400]), "-123400"),
            (Numeric, numeric_bytes(2, NUMERIC_POS, 0, &[1]), "100000000"),
            (Numeric, numeric_bytes(0, NUMERIC_NEG, 3, &[0, 1230]), "-0.123"),
            (Numeric, numeric_bytes(0, NUMERIC_NAN, 0, &[]), "NaN"),
            (Numeric, numeric_bytes(0, NUMERIC_PINF, 0, &[]), "Infinity"),
            (Numeric, numeric_bytes(0, NUMERIC_NINF, 0, &[]), "-Infinity"),
            (Text, "héllo".as_bytes().to_vec(), "héllo"),
            (Text, vec![0xE9], "\\351"),
            (Text, vec![0], ""),
            (Uuid, (0u8..16).collect(), "00010203-0405-0607-0809-0a0b0c0d0e0f"),
            (Date, i4(-1), "1999-12-31"),
            (Date, i4(i32::MAX), "infinity"),
            (Date, i4(-730_485), "0001-01-01 BC"),
            (Time, 86_400_000_000i64.to_be_bytes().to_vec(), "24:00:00"),
            (Timestamp, 1_500_000i64.to_be_bytes().to_vec(), "2000-01-01 00:00:01.5"),
            (TimestampTz, i64::MIN.to_be_bytes().to_vec(), "-infinity"),
            (Interval, [(-3_600_000_001i64).to_be_bytes().to_vec(), i4(-2), i4(14)].concat(), "P1Y2M-2DT-1H-0.000001S"),
            (Json, b"{\"a\": [1, 2.50]}".to_vec(), "{\"a\": [1, 2.50]}"),
            (Json, b"\x01{\"a\": 1.000000000000000001}".to_vec(), "{\"a\": 1.000000000000000001}"),
            (Bytes, vec![0xde, 0, 0xef], "\\xde00ef"),
            (Array(Box::new(Int4)), array_bytes(23, &[3], &[Some(&i4(1)[..]), None, Some(&i4(-3)[..])]), "{1,NULL,-3}"),
            (Array(Box::new(Text)), array_bytes(25, &[], &[]), "{}"),
            (
                Array(Box::new(Int8)),
                array_bytes(
                    20,
                    &[2, 2],
                    &[
                        Some(&1i64.to_be_bytes()[..]),
                        Some(&2i64.to_be_bytes()[..]),
                        Some(&3i64.to_be_bytes()[..]),
                        None,
                    ],
                ),
                "{{1,2},{3,NULL}}",
            ),
            (
                Array(Box::new(Text)),
                array_bytes(25, &[2], &[Some(&b"NULL"[..]), Some(&b"a,b"[..])]),
                "{\"NULL\",\"a,b\"}",
            ),
        ]
    }

    #[test]
    fn each_type_reads_as_its_text_form_does() {
        for (ty, bytes, text_form) in samples() {
            let from_text = text::parse(&ty, text_form).unwrap_or_else(|e| panic!("{e}"));
            let from_binary = parse(&ty, &bytes).unwrap_or_else(|e| panic!("{ty:?} {text_form}: {e}"));
            assert!(from_binary.same_spelling(&from_text), "{ty:?} {text_form}: {from_binary:?} != {from_text:?}");
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        for (ty, bytes, text_form) in samples() {
            // Every strict prefix: fixed-width types and headers must notice it.
            for cut in 0..bytes.len() {
                let prefix = &bytes[..cut];
                let result = std::panic::catch_unwind(|| parse(&ty, prefix));
                let result = result.unwrap_or_else(|_| panic!("{ty:?} {text_form}: panicked on {cut} bytes"));
                let variable = matches!(ty, ColumnType::Text | ColumnType::Json | ColumnType::Bytes);
                // Four bytes are an oid or xid, which the text path reads as int8 too.
                let oid_width = ty == ColumnType::Int8 && cut == 4;
                if !variable && !oid_width {
                    assert!(result.is_err(), "{ty:?} {text_form}: {cut} bytes read as {result:?}");
                }
            }
            // One byte too many, and bytes flipped to garbage.
            let mut long = bytes.clone();
            long.push(0x7f);
            if !matches!(ty, ColumnType::Text | ColumnType::Bytes) {
                assert!(parse(&ty, &long).is_err(), "{ty:?} {text_form}: a trailing byte was accepted");
            }
            let garbage: Vec<u8> = bytes.iter().map(|b| b ^ 0xff).collect();
            let _ = std::panic::catch_unwind(|| parse(&ty, &garbage))
                .unwrap_or_else(|_| panic!("{ty:?} {text_form}: panicked on garbage"));
        }
        // Lengths and counts that point past the end must neither panic nor allocate.
        let huge = array_bytes(23, &[i32::MAX, i32::MAX], &[]);
        assert!(parse(&ColumnType::Array(Box::new(ColumnType::Int4)), &huge).is_err());
        let mut long_item = array_bytes(23, &[1], &[]);
        long_item.extend(i32::MAX.to_be_bytes());
        assert!(parse(&ColumnType::Array(Box::new(ColumnType::Int4)), &long_item).is_err());
        // The element type must be the column's.
        let wrong = array_bytes(25, &[1], &[Some(&b"abcd"[..])]);
        assert!(parse(&ColumnType::Array(Box::new(ColumnType::Int4)), &wrong).is_err());
        assert!(parse(&ColumnType::Numeric, &numeric_bytes(0, NUMERIC_POS, 0, &[10_000])).is_err());
        assert!(parse(&ColumnType::Numeric, &numeric_bytes(0, 0x1234, 0, &[1])).is_err());
        assert!(parse(&ColumnType::Bool, &[2]).is_err());
        assert!(parse(&ColumnType::Time, &(-1i64).to_be_bytes()).is_err());
        assert!(parse(&ColumnType::Text, &[0xff, 0xfe]).is_err());
        assert!(parse(&ColumnType::Json, b"\x02{}").is_err());
        assert!(parse(&ColumnType::Other("point".into()), b"\0\0").is_err());
    }

    #[test]
    fn only_unknown_types_are_unsupported() {
        assert!(supported(&ColumnType::Numeric));
        assert!(supported(&ColumnType::Array(Box::new(ColumnType::Json))));
        assert!(!supported(&ColumnType::Other("mood".into())));
        assert!(!supported(&ColumnType::Array(Box::new(ColumnType::Other("mood".into())))));
    }
}
