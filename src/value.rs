//! Typed column values: what a row is made of on every side of the `Change` seam.
//!
//! Values are decoded once, in `source/`, and then shared (behind `Arc`) by the replica, the
//! engines and the API. They keep what the source meant: numeric stays exact (including NaN and
//! ±Infinity), timestamps keep whether they carry a zone, unknown types keep their type name and
//! text. There is one canonical JSON form, used by `tail`, GraphQL and checkpoints: int8 and
//! numeric are strings (JavaScript numbers cannot hold them), timestamps are ISO 8601.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ecow::EcoString;

use serde::ser::{Serialize, SerializeSeq, Serializer};

/// Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// One column value. `Null` is SQL NULL; a value that is *absent* (an unchanged TOAST column, a
/// column missing from a key-only before-image) is not a `Value` at all, see [`crate::change::Image`].
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    /// Exact decimal text as the source printed it (`-12.50`, `NaN`, `Infinity`, `-Infinity`).
    Numeric(EcoString),
    /// Up to 15 bytes inline, longer shared behind a pointer: most column text (a status, a
    /// code, a short name) costs no allocation of its own.
    Text(EcoString),
    Uuid(uuid::Uuid),
    /// Days since 1970-01-01; `i32::MIN`/`i32::MAX` stand for -infinity/infinity.
    Date(i32),
    /// Microseconds since midnight (24:00:00 is allowed, as in PostgreSQL).
    Time(i64),
    /// Microseconds since 1970-01-01 00:00, no zone; `i64::MIN`/`i64::MAX` are ∓infinity.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00 UTC; `i64::MIN`/`i64::MAX` are ∓infinity.
    TimestampTz(i64),
    Interval(Interval),
    /// JSON text, validated; kept as text so numbers keep their exact digits.
    Json(EcoString),
    Bytes(Arc<[u8]>),
    Array(Arc<[Value]>),
    /// A type opslive does not know, with its type name and the source's text for it. Behind
    /// one pointer: it is rare, and every other value would pay for its two names' width.
    Other(Arc<OtherValue>),
}

// The replica holds one `Value` per column per row, and one per index entry: its width is
// most of a row's memory. Wider payloads go behind a pointer.
const _: () = assert!(std::mem::size_of::<Value>() == 24, "Value grew past 24 bytes");

/// A value of a type opslive does not interpret.
#[derive(Clone, Debug)]
pub struct OtherValue {
    pub type_name: Arc<str>,
    pub text: Arc<str>,
}

/// A PostgreSQL-style interval: months and days are kept apart from time because their length
/// depends on the calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Value {
    /// Bytes the value takes, its own and what it points to (an estimate: allocator overhead
    /// is not counted). What the replica's and a transaction's memory figures add up.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                // Inline up to its limit; past it, a shared buffer behind a 16-byte header.
                Value::Numeric(s) | Value::Text(s) if s.len() <= EcoString::INLINE_LIMIT => 0,
                Value::Numeric(s) | Value::Text(s) => s.len() + 16,
                Value::Json(s) => s.len() + 16,
                Value::Other(other) => other.type_name.len() + other.text.len() + 64,
                Value::Bytes(b) => b.len() + 16,
                Value::Array(items) => items.iter().map(Value::approx_bytes).sum::<usize>() + 16,
                _ => 0,
            }
    }
}

impl Value {
    pub fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    pub fn other(type_name: Arc<str>, text: &str) -> Value {
        Value::Other(Arc::new(OtherValue { type_name, text: Arc::from(text) }))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A small integer ranking the kinds, so values of different kinds still order totally.
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => 2,
            Value::Float4(_) | Value::Float8(_) => 3,
            Value::Numeric(_) => 4,
            Value::Text(_) => 5,
            Value::Uuid(_) => 6,
            Value::Date(_) => 7,
            Value::Time(_) => 8,
            Value::Timestamp(_) => 9,
            Value::TimestampTz(_) => 10,
            Value::Interval(_) => 11,
            Value::Json(_) => 12,
            Value::Bytes(_) => 13,
            Value::Array(_) => 14,
            Value::Other(_) => 15,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int2(v) => Some(v.into()),
            Value::Int4(v) => Some(v.into()),
            Value::Int8(v) => Some(v),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float4(v) => Some(v.into()),
            Value::Float8(v) => Some(v),
            _ => None,
        }
    }
}

impl Value {
    /// Whether two values are also spelled the same: equal numerics with the same digits
    /// (`1.0` is not `1.00`), floats with the same bits, anything else equal. What a value
    /// contributed, or the text a key is named by, is told apart by this, not by `==`.
    pub fn same_spelling(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Numeric(x), Value::Numeric(y)) => x == y,
            (Value::Float4(x), Value::Float4(y)) => x.to_bits() == y.to_bits(),
            (Value::Float8(x), Value::Float8(y)) => x.to_bits() == y.to_bits(),
            _ => self == other,
        }
    }
}

/// Equality follows [`Ord`]: the replica keys rows and indexes by value, so equality must be
/// total (NaN equals NaN, as in PostgreSQL's btree ordering).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A total order in the spirit of PostgreSQL's btree: NULL first (the replica's own choice),
/// NaN above every other float, numeric compared by value, not by text.
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            // Same-width integers first: keys are compared a few dozen times per row applied.
            (Int8(a), Int8(b)) => a.cmp(b),
            (Int4(a), Int4(b)) => a.cmp(b),
            (Int2(a), Int2(b)) => a.cmp(b),
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (a, b) if a.rank() == 2 && b.rank() == 2 => a.as_i64().cmp(&b.as_i64()),
            (a, b) if a.rank() == 3 && b.rank() == 3 => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                // PostgreSQL: NaN equals NaN and sorts above everything else.
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                }
            }
            (Numeric(a), Numeric(b)) => numeric_cmp(a, b),
            (Text(a), Text(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => interval_cmp(a, b),
            (Json(a), Json(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Array(a), Array(b)) => a.iter().cmp(b.iter()),
            (Other(a), Other(b)) => a.type_name.cmp(&b.type_name).then_with(|| a.text.cmp(&b.text)),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        use Value::*;
        // Must agree with Eq: the integer widths hash alike, as do equal numerics.
        self.rank().hash(state);
        match self {
            Null => {}
            Bool(b) => b.hash(state),
            Int2(_) | Int4(_) | Int8(_) => self.as_i64().hash(state),
            Float4(_) | Float8(_) => {
                let v = self.as_f64().unwrap_or(0.0);
                let v = if v.is_nan() {
                    f64::NAN
                } else if v == 0.0 {
                    0.0
                } else {
                    v
                };
                v.to_bits().hash(state)
            }
            Numeric(n) => numeric_normal(n).hash(state),
            Text(s) | Json(s) => s.hash(state),
            Uuid(u) => u.hash(state),
            Date(d) => d.hash(state),
            Time(t) | Timestamp(t) | TimestampTz(t) => t.hash(state),
            Interval(i) => interval_span(i).hash(state),
            Bytes(b) => b.hash(state),
            Array(a) => a.hash(state),
            Other(other) => {
                other.type_name.hash(state);
                other.text.hash(state)
            }
        }
    }
}

/// PostgreSQL compares intervals by their span with 30-day months and 24-hour days.
fn interval_span(i: &Interval) -> i128 {
    const DAY: i128 = 86_400_000_000;
    i128::from(i.months) * 30 * DAY + i128::from(i.days) * DAY + i128::from(i.micros)
}

fn interval_cmp(a: &Interval, b: &Interval) -> Ordering {
    interval_span(a).cmp(&interval_span(b))
}

/// A numeric's text split into sign, integer digits without leading zeros and fraction digits
/// without trailing zeros, so that `1.50` and `1.5` compare and hash alike.
enum NumericParts<'a> {
    NegInf,
    Finite { negative: bool, int: &'a str, frac: &'a str },
    PosInf,
    NaN,
}

fn numeric_parts(s: &str) -> NumericParts<'_> {
    match s {
        "NaN" => return NumericParts::NaN,
        "Infinity" => return NumericParts::PosInf,
        "-Infinity" => return NumericParts::NegInf,
        _ => {}
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    // -0 is 0.
    let negative = negative && !(int.is_empty() && frac.is_empty());
    NumericParts::Finite { negative, int, frac }
}

fn numeric_normal(s: &str) -> (u8, bool, &str, &str) {
    match numeric_parts(s) {
        NumericParts::NegInf => (0, false, "", ""),
        NumericParts::Finite { negative, int, frac } => (1, negative, int, frac),
        NumericParts::PosInf => (2, false, "", ""),
        NumericParts::NaN => (3, false, "", ""),
    }
}

/// Compares two exact decimal texts by value (NaN above +Infinity, as PostgreSQL sorts).
pub fn numeric_cmp(a: &str, b: &str) -> Ordering {
    let (ka, na, ia, fa) = numeric_normal(a);
    let (kb, nb, ib, fb) = numeric_normal(b);
    if ka != kb || ka != 1 {
        return ka.cmp(&kb);
    }
    let magnitude = ia.len().cmp(&ib.len()).then_with(|| ia.cmp(ib)).then_with(|| fa.cmp(fb));
    match (na, nb) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int2(v) => s.serialize_i16(*v),
            Value::Int4(v) => s.serialize_i32(*v),
            Value::Int8(v) => s.collect_str(v),
            Value::Float4(v) if v.is_finite() => s.serialize_f32(*v),
            Value::Float4(v) => serialize_float(f64::from(*v), s),
            Value::Float8(v) => serialize_float(*v, s),
            Value::Numeric(n) | Value::Text(n) => s.serialize_str(n),
            Value::Uuid(u) => s.collect_str(u),
            Value::Date(_)
            | Value::Time(_)
            | Value::Timestamp(_)
            | Value::TimestampTz(_)
            | Value::Interval(_)
            | Value::Bytes(_) => s.serialize_str(&self.to_canonical_string()),
            Value::Json(text) => match serde_json::value::RawValue::from_string(text.to_string()) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_str(text),
            },
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Other(other) => s.serialize_str(&other.text),
        }
    }
}

fn serialize_float<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(v)
    }
}

impl Value {
    /// The canonical text of a value (what the JSON form holds for string-shaped values).
    pub fn to_canonical_string(&self) -> String {
        let mut out = String::new();
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int2(v) => out.push_str(&v.to_string()),
            Value::Int4(v) => out.push_str(&v.to_string()),
            Value::Int8(v) => out.push_str(&v.to_string()),
            Value::Float4(v) => out.push_str(&v.to_string()),
            Value::Float8(v) => out.push_str(&v.to_string()),
            Value::Numeric(t) | Value::Text(t) | Value::Json(t) => out.push_str(t),
            Value::Other(other) => out.push_str(&other.text),
            Value::Uuid(u) => out.push_str(&u.to_string()),
            Value::Date(d) => write_date(&mut out, *d),
            Value::Time(t) => write_time(&mut out, *t),
            Value::Timestamp(t) => write_timestamp(&mut out, *t, false),
            Value::TimestampTz(t) => write_timestamp(&mut out, *t, true),
            Value::Interval(i) => write_interval(&mut out, i),
            Value::Bytes(b) => {
                out.push_str("\\x");
                out.push_str(&hex::encode(b));
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(item).unwrap_or_default());
                }
                out.push(']');
            }
        }
        out
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn write_date(out: &mut String, days: i32) {
    match days {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        d => {
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163);
            match date {
                Some(date) => write_ymd(out, date),
                None => out.push_str("invalid-date"),
            }
        }
    }
}

fn write_ymd(out: &mut String, date: chrono::NaiveDate) {
    use chrono::Datelike;
    let y = date.year();
    // ISO 8601: astronomical years, four digits, a sign outside 0..=9999.
    if (0..=9999).contains(&y) {
        let _ = write!(out, "{y:04}-{:02}-{:02}", date.month(), date.day());
    } else {
        let _ = write!(out, "{y:+05}-{:02}-{:02}", date.month(), date.day());
    }
}

fn write_time(out: &mut String, micros: i64) {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    write_fraction(out, frac);
}

fn write_fraction(out: &mut String, frac: i64) {
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn write_timestamp(out: &mut String, micros: i64, utc: bool) {
    match micros {
        i64::MAX => return out.push_str("infinity"),
        i64::MIN => return out.push_str("-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let time = micros.rem_euclid(MICROS_PER_DAY);
    match i32::try_from(days) {
        Ok(d) if d != i32::MIN && d != i32::MAX => write_date(out, d),
        _ => out.push_str("invalid-date"),
    }
    out.push('T');
    write_time(out, time);
    if utc {
        out.push('Z');
    }
}

fn write_interval(out: &mut String, i: &Interval) {
    // ISO 8601 duration with PostgreSQL's per-field signs, as IntervalStyle=iso_8601 prints it.
    if i.months == 0 && i.days == 0 && i.micros == 0 {
        return out.push_str("PT0S");
    }
    out.push('P');
    let (years, months) = (i.months / 12, i.months % 12);
    if years != 0 {
        let _ = write!(out, "{years}Y");
    }
    if months != 0 {
        let _ = write!(out, "{months}M");
    }
    if i.days != 0 {
        let _ = write!(out, "{}D", i.days);
    }
    if i.micros != 0 {
        out.push('T');
        let hours = i.micros / 3_600_000_000;
        let minutes = (i.micros / 60_000_000) % 60;
        let micros = i.micros % 60_000_000;
        if hours != 0 {
            let _ = write!(out, "{hours}H");
        }
        if minutes != 0 {
            let _ = write!(out, "{minutes}M");
        }
        if micros != 0 {
            if micros < 0 {
                out.push('-');
            }
            let abs = micros.unsigned_abs();
            let _ = write!(out, "{}", abs / 1_000_000);
            write_fraction(out, (abs % 1_000_000) as i64);
            out.push('S');
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    chrono::NaiveDate::from_ymd_opt(year, month, day).map(|d| {
        use chrono::Datelike;
        d.num_days_from_ce() - 719_163
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn numeric_orders_by_value_not_text() {
        let n = |s: &str| Value::Numeric(s.into());
        assert!(n("9.5") < n("10"));
        assert!(n("-10") < n("-9.5"));
        assert_eq!(n("1.50"), n("1.5"));
        assert_eq!(n("-0.0"), n("0"));
        assert!(n("Infinity") < n("NaN"));
        assert!(n("-Infinity") < n("-99999999999999999999999999999999"));
        assert!(n("0.001") < n("0.01"));
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Value| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&n("1.50")), h(&n("1.5")));
        assert_eq!(h(&Value::Int4(7)), h(&Value::Int8(7)));
    }

    #[test]
    fn canonical_json() {
        assert_eq!(json(&Value::Int8(9_007_199_254_740_993)), "\"9007199254740993\"");
        assert_eq!(json(&Value::Int4(-3)), "-3");
        assert_eq!(json(&Value::Float8(f64::NAN)), "\"NaN\"");
        assert_eq!(json(&Value::Float8(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(json(&Value::Float8(0.1)), "0.1");
        assert_eq!(json(&Value::Float4(1.1)), "1.1", "no digits from widening to f64");
        assert_eq!(json(&Value::Numeric("12.50".into())), "\"12.50\"");
        assert_eq!(json(&Value::Json("{\"a\": 1.000000000000000001}".into())), "{\"a\": 1.000000000000000001}");
        assert_eq!(json(&Value::Date(0)), "\"1970-01-01\"");
        assert_eq!(json(&Value::Date(i32::MAX)), "\"infinity\"");
        assert_eq!(json(&Value::TimestampTz(1_500_000)), "\"1970-01-01T00:00:01.5Z\"");
        assert_eq!(json(&Value::Timestamp(-1)), "\"1969-12-31T23:59:59.999999\"");
        assert_eq!(json(&Value::Time(3_600_000_000 + 61_000_000)), "\"01:01:01\"");
        assert_eq!(json(&Value::Bytes(Arc::from(&b"\x01\xff"[..]))), "\"\\\\x01ff\"");
        let i = Interval { months: 14, days: 3, micros: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_789_000 };
        assert_eq!(json(&Value::Interval(i)), "\"P1Y2M3DT4H5M6.789S\"");
        let bc = days_from_civil(-43, 3, 15).unwrap();
        assert_eq!(json(&Value::Date(bc)), "\"-0043-03-15\"");
    }
}
