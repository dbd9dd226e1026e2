//! Live results written as GraphQL JSON, once per update and shared by every subscriber of it.
//!
//! Values go through the same conversion as the query path (`scalars::to_graphql`), so a live
//! result and the same query over HTTP print every value alike; the tests compare them.

use std::fmt::Write as _;

use super::projection::{AsOfField, Fields, GroupField, PatchField, RowField, UpdateField, UpsertField};
use crate::aggregate::GroupResult;
use crate::change::{Position, Row};
use crate::live::RowsDiff;
use crate::value::Value;

/// Where a result stands in the source's history: the `asOf` of every live message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsOf {
    pub position: Position,
    /// Commit time of the last transaction applied, microseconds since the epoch (unknown
    /// before the first one).
    pub commit_ts: Option<i64>,
}

/// A JSON writer into one buffer.
pub struct Json(pub String);

impl Default for Json {
    fn default() -> Json {
        Json::new()
    }
}

impl Json {
    pub fn new() -> Json {
        Json(String::with_capacity(256))
    }

    pub fn raw(&mut self, s: &str) -> &mut Json {
        self.0.push_str(s);
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Json {
        // serde_json's escaping, the same the rest of the API's JSON gets.
        let escaped = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        self.0.push_str(&escaped);
        self
    }

    fn key(&mut self, first: &mut bool, key: &str) {
        if !std::mem::take(first) {
            self.0.push(',');
        }
        self.string(key);
        self.0.push(':');
    }

    pub fn value(&mut self, v: Option<&Value>) {
        match v {
            None | Some(Value::Null) => self.0.push_str("null"),
            Some(v) => {
                let gql = super::super::scalars::to_graphql(v);
                match serde_json::to_string(&gql) {
                    Ok(s) => self.0.push_str(&s),
                    Err(_) => self.0.push_str("null"),
                }
            }
        }
    }

    pub fn row(&mut self, fields: &Fields<RowField>, row: &[Value]) {
        self.0.push('{');
        let mut first = true;
        for (key, field) in fields {
            self.key(&mut first, key);
            match field {
                RowField::Column(i) => self.value(row.get(*i)),
                RowField::Typename(t) => {
                    self.string(t);
                }
            }
        }
        self.0.push('}');
    }

    pub fn rows(&mut self, fields: &Fields<RowField>, rows: &[Row]) {
        self.0.push('[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.row(fields, row);
        }
        self.0.push(']');
    }

    pub fn groups(
        &mut self,
        fields: &Fields<GroupField>,
        groups: &[GroupResult],
        group_by: &[usize],
        measures: &[(crate::aggregate::AggFn, usize)],
    ) {
        self.0.push('[');
        for (i, g) in groups.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push('{');
            let mut first = true;
            for (key, field) in fields {
                self.key(&mut first, key);
                match field {
                    GroupField::Count => {
                        let _ = write!(self.0, "{}", i64::try_from(g.count).unwrap_or(i64::MAX));
                    }
                    GroupField::Typename(t) => {
                        self.string(t);
                    }
                    GroupField::Key(columns) => {
                        self.0.push('{');
                        let mut first = true;
                        for (key, c) in columns {
                            self.key(&mut first, key);
                            match c {
                                RowField::Column(p) => {
                                    let v = group_by.iter().position(|q| q == p).and_then(|i| g.key.get(i));
                                    self.value(v);
                                }
                                RowField::Typename(t) => {
                                    self.string(t);
                                }
                            }
                        }
                        self.0.push('}');
                    }
                    GroupField::Measure(f, columns) => {
                        self.0.push('{');
                        let mut first = true;
                        for (key, c) in columns {
                            self.key(&mut first, key);
                            match c {
                                RowField::Column(p) => {
                                    let v = measures.iter().position(|m| *m == (*f, *p)).and_then(|i| g.values.get(i));
                                    self.value(v);
                                }
                                RowField::Typename(t) => {
                                    self.string(t);
                                }
                            }
                        }
                        self.0.push('}');
                    }
                }
            }
            self.0.push('}');
        }
        self.0.push(']');
    }

    pub fn as_of(&mut self, fields: &Fields<AsOfField>, as_of: AsOf) {
        self.0.push('{');
        let mut first = true;
        for (key, field) in fields {
            self.key(&mut first, key);
            match field {
                AsOfField::Position => {
                    self.string(&as_of.position.to_string());
                }
                AsOfField::CommitTs => self.value(as_of.commit_ts.map(Value::TimestampTz).as_ref()),
                AsOfField::Typename(t) => {
                    self.string(t);
                }
            }
        }
        self.0.push('}');
    }

    /// `{"asOf":{…},"seq":N}`: the extensions of a plain subscription's result.
    pub fn extensions(&mut self, as_of: AsOf, seq: u64) {
        self.raw("{\"asOf\":{\"position\":");
        self.string(&as_of.position.to_string());
        self.raw(",\"commitTs\":");
        self.value(as_of.commit_ts.map(Value::TimestampTz).as_ref());
        let _ = write!(self.0, "}},\"seq\":{seq}}}");
    }
}

/// What an incremental update carries.
pub enum UpdateBody<'a> {
    Reset(&'a [Row]),
    Patch { diff: &'a RowsDiff, key: &'a [usize] },
}

/// One incremental update object (`…Patches` field value).
pub fn update(out: &mut Json, fields: &Fields<UpdateField>, body: &UpdateBody<'_>, as_of: AsOf, seq: u64) {
    out.0.push('{');
    let mut first = true;
    for (k, field) in fields {
        out.key(&mut first, k);
        match field {
            UpdateField::Seq => {
                let _ = write!(out.0, "{seq}");
            }
            UpdateField::AsOf(f) => out.as_of(f, as_of),
            UpdateField::Typename(t) => {
                out.string(t);
            }
            UpdateField::Reset(f) => match body {
                UpdateBody::Reset(rows) => out.rows(f, rows),
                UpdateBody::Patch { .. } => {
                    out.raw("null");
                }
            },
            UpdateField::Patch(f) => match body {
                UpdateBody::Reset(_) => {
                    out.raw("null");
                }
                UpdateBody::Patch { diff, key } => patch(out, f, diff, key),
            },
        }
    }
    out.0.push('}');
}

fn patch(out: &mut Json, fields: &Fields<PatchField>, diff: &RowsDiff, key: &[usize]) {
    out.0.push('{');
    let mut first = true;
    for (k, field) in fields {
        out.key(&mut first, k);
        match field {
            PatchField::Typename(t) => {
                out.string(t);
            }
            PatchField::Upserts(f) => {
                out.0.push('[');
                for (i, (index, row)) in diff.upserts.iter().enumerate() {
                    if i > 0 {
                        out.0.push(',');
                    }
                    out.0.push('{');
                    let mut first = true;
                    for (k, field) in f {
                        out.key(&mut first, k);
                        match field {
                            UpsertField::Index => {
                                let _ = write!(out.0, "{index}");
                            }
                            UpsertField::Row(f) => out.row(f, row),
                            UpsertField::Typename(t) => {
                                out.string(t);
                            }
                        }
                    }
                    out.0.push('}');
                }
                out.0.push(']');
            }
            PatchField::RemovedKeys(f) => {
                out.0.push('[');
                for (i, row) in diff.removed.iter().enumerate() {
                    if i > 0 {
                        out.0.push(',');
                    }
                    // Only the key columns: a removed row's other values are not news.
                    let key_only: Vec<Value> =
                        (0..row.len()).map(|c| if key.contains(&c) { row[c].clone() } else { Value::Null }).collect();
                    out.row(f, &key_only);
                }
                out.0.push(']');
            }
        }
    }
    out.0.push('}');
}
