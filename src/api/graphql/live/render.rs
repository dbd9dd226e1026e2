//! Live results written as GraphQL JSON, once per update and shared by every subscriber of it.
//!
//! Values go through the same conversion as the query path (`scalars::to_graphql`), so a live
//! result and the same query over HTTP print every value alike; the tests compare them.

use std::fmt::Write as _;

use super::projection::{AsOfField, Fields, GroupField, PatchField, RowField, UpdateField, UpsertField};
use crate::aggregate::GroupResult;
use crate::as_of::AsOf;
use crate::change::Row;
use crate::live::RowsDiff;
use crate::value::Value;

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

    /// `{"key": …, …}`: one field per selected field, each written by `write`.
    pub fn object<T>(&mut self, fields: &Fields<T>, mut write: impl FnMut(&mut Json, &T)) {
        self.0.push('{');
        for (i, (key, field)) in fields.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.string(key);
            self.0.push(':');
            write(self, field);
        }
        self.0.push('}');
    }

    /// `[…]`, each item written by `write`.
    pub fn list<I: IntoIterator>(&mut self, items: I, mut write: impl FnMut(&mut Json, I::Item)) {
        self.0.push('[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            write(self, item);
        }
        self.0.push(']');
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

    /// An object of columns, each value read by `value` from the column's position.
    pub fn columns<'v>(&mut self, fields: &Fields<RowField>, value: impl Fn(usize) -> Option<&'v Value>) {
        self.object(fields, |out, field| match field {
            RowField::Column(i) => out.value(value(*i)),
            RowField::Typename(t) => {
                out.string(t);
            }
        });
    }

    pub fn row(&mut self, fields: &Fields<RowField>, row: &[Value]) {
        self.columns(fields, |i| row.get(i));
    }

    pub fn rows(&mut self, fields: &Fields<RowField>, rows: &[Row]) {
        self.list(rows, |out, row| out.row(fields, row));
    }

    pub fn groups(
        &mut self,
        fields: &Fields<GroupField>,
        groups: &[GroupResult],
        group_by: &[usize],
        measures: &[(crate::aggregate::AggFn, crate::aggregate::Input)],
    ) {
        self.list(groups, |out, g| {
            out.object(fields, |out, field| match field {
                GroupField::Count => {
                    let _ = write!(out.0, "{}", i64::try_from(g.count).unwrap_or(i64::MAX));
                }
                GroupField::Typename(t) => {
                    out.string(t);
                }
                GroupField::Key(columns) => {
                    out.columns(columns, |p| group_by.iter().position(|q| *q == p).and_then(|i| g.key.get(i)))
                }
                GroupField::Measure(f, columns) => out.columns(columns, |p| {
                    measures
                        .iter()
                        .position(|(g, input)| g == f && *input == crate::aggregate::Input::Column(p))
                        .and_then(|i| g.values.get(i))
                }),
            })
        });
    }

    pub fn as_of(&mut self, fields: &Fields<AsOfField>, as_of: AsOf) {
        self.object(fields, |out, field| match field {
            AsOfField::Position => {
                out.string(&as_of.position.to_string());
            }
            AsOfField::CommitTs => out.value(as_of.commit_ts.map(Value::TimestampTz).as_ref()),
            AsOfField::Typename(t) => {
                out.string(t);
            }
        });
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
    out.object(fields, |out, field| match (field, body) {
        (UpdateField::Seq, _) => {
            let _ = write!(out.0, "{seq}");
        }
        (UpdateField::AsOf(f), _) => out.as_of(f, as_of),
        (UpdateField::Typename(t), _) => {
            out.string(t);
        }
        (UpdateField::Reset(f), UpdateBody::Reset(rows)) => out.rows(f, rows),
        (UpdateField::Patch(f), UpdateBody::Patch { diff, key }) => patch(out, f, diff, key),
        (UpdateField::Reset(_), _) | (UpdateField::Patch(_), _) => {
            out.raw("null");
        }
    });
}

fn patch(out: &mut Json, fields: &Fields<PatchField>, diff: &RowsDiff, key: &[usize]) {
    out.object(fields, |out, field| match field {
        PatchField::Typename(t) => {
            out.string(t);
        }
        PatchField::Upserts(f) => out.list(&diff.upserts, |out, (index, row)| {
            out.object(f, |out, field| match field {
                UpsertField::Index => {
                    let _ = write!(out.0, "{index}");
                }
                UpsertField::Row(f) => out.row(f, row),
                UpsertField::Typename(t) => {
                    out.string(t);
                }
            })
        }),
        // Only the key columns: a removed row's other values are not news.
        PatchField::RemovedKeys(f) => {
            out.list(&diff.removed, |out, row| out.columns(f, |c| key.contains(&c).then(|| &row[c])))
        }
    });
}
