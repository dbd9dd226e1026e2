//! One change message as GraphQL JSON, written straight from the logged rows:
//! `{"data":{"ordersChanges":{"cursor":…,"events":[…]}}}`.

use std::fmt::Write as _;

use super::super::live::projection::Fields;
use super::super::live::render::Json;
use super::compile::{BatchField, EventField};
use crate::change::{Op, Position};
use crate::changes::{Cursor, Event};
use crate::replica::TxInfo;
use crate::value::Value;

/// Where a message stands: the transaction it carries, or (the first message of a stream
/// without a cursor) only a position.
pub enum At<'a> {
    Tx(&'a TxInfo),
    Start(Position),
}

pub fn message(
    field: &str,
    fields: &Fields<BatchField>,
    key: &[usize],
    cursor: Cursor,
    at: At<'_>,
    events: &[Event<'_>],
) -> String {
    let mut out = Json::new();
    out.raw("{\"data\":{");
    out.string(field);
    out.raw(":");
    out.object(fields, |out, f| match f {
        BatchField::Typename(t) => {
            out.string(t);
        }
        BatchField::Cursor => {
            out.string(&cursor.to_string());
        }
        BatchField::Position => {
            let position = match &at {
                At::Tx(tx) => tx.position,
                At::Start(p) => *p,
            };
            out.string(&position.to_string());
        }
        BatchField::CommitTs => match &at {
            At::Tx(tx) => out.value(Some(&Value::TimestampTz(tx.commit_ts))),
            At::Start(_) => {
                out.raw("null");
            }
        },
        BatchField::Xid => match &at {
            At::Tx(tx) => {
                let _ = write!(out.0, "\"{}\"", tx.xid);
            }
            At::Start(_) => {
                out.raw("null");
            }
        },
        BatchField::Events(fields) => out.list(events, |out, e| event(out, fields, key, e)),
    });
    out.raw("}}");
    out.0
}

fn event(out: &mut Json, fields: &Fields<EventField>, key: &[usize], e: &Event<'_>) {
    out.object(fields, |out, f| match f {
        EventField::Typename(t) => {
            out.string(t);
        }
        EventField::Kind => {
            out.string(e.kind.name());
        }
        EventField::Op => {
            out.string(match e.op {
                Op::Insert => "INSERT",
                Op::Update => "UPDATE",
                Op::Delete => "DELETE",
                Op::Truncate => "TRUNCATE",
            });
        }
        // Only the key columns: a row that left is told by its key alone.
        EventField::Key(columns) => match e.keyed {
            Some(row) => out.columns(columns, |c| key.contains(&c).then(|| &row[c])),
            None => {
                out.raw("null");
            }
        },
        EventField::Before(columns) => match e.before {
            Some(row) => out.row(columns, row),
            None => {
                out.raw("null");
            }
        },
        EventField::After(columns) => match e.after {
            Some(row) => out.row(columns, row),
            None => {
                out.raw("null");
            }
        },
    });
}
