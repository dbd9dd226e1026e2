//! What one subscriber sees of one logged transaction.
//!
//! A subscriber's view of a table is its filter: the client's `where` and the role's row
//! filter together. A row change is news to it when the row matched before or matches after:
//!
//! | before | after | kind     | images sent                  |
//! |--------|-------|----------|------------------------------|
//! | no     | yes   | `ENTER`  | after                        |
//! | yes    | yes   | `UPDATE` | before and after             |
//! | yes    | no    | `LEAVE`  | the key only                 |
//! | no     | no    | —        | nothing, not even the key    |
//!
//! so a row the subscriber may not see is never mentioned. A truncate is one `LEAVE` with no
//! key: every row left.

use crate::change::{Key, Op, Row};
use crate::query::Filter;
use crate::registry::TableId;

use super::log::{Break, Entry, Item};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Enter,
    Update,
    Leave,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Enter => "ENTER",
            Kind::Update => "UPDATE",
            Kind::Leave => "LEAVE",
        }
    }
}

/// One event for one subscriber.
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    pub kind: Kind,
    /// What happened at the source.
    pub op: Op,
    /// The row the event's key is read from (the old row when it left); `None` for a truncate.
    pub keyed: Option<&'a Row>,
    pub before: Option<&'a Row>,
    pub after: Option<&'a Row>,
}

impl Event<'_> {
    /// The row's key (its old key when it left); `None` for a truncate.
    pub fn key(&self, key_columns: &[usize]) -> Option<Key> {
        self.keyed.map(|row| Key::of(row, key_columns))
    }
}

/// The events of `entry` for a subscriber of `table` through `filter`, in source order, or the
/// break that ends its stream.
pub fn events<'a>(entry: &'a Entry, table: TableId, filter: &Filter) -> Result<Vec<Event<'a>>, Break> {
    let mut out = Vec::new();
    if !entry.touches(table) {
        return Ok(out);
    }
    for item in &entry.items {
        match item {
            Item::Row(d) if d.table == table => {
                let before = d.before.as_ref().filter(|r| filter.matches(r));
                let after = d.after.as_ref().filter(|r| filter.matches(r));
                let event = match (before, after) {
                    (None, None) => continue,
                    (None, Some(a)) => {
                        Event { kind: Kind::Enter, op: d.op, keyed: Some(a), before: None, after: Some(a) }
                    }
                    (Some(b), Some(a)) => {
                        Event { kind: Kind::Update, op: d.op, keyed: Some(a), before: Some(b), after: Some(a) }
                    }
                    (Some(b), None) => Event { kind: Kind::Leave, op: d.op, keyed: Some(b), before: None, after: None },
                };
                out.push(event);
            }
            Item::Truncated(t) if *t == table => {
                out.push(Event { kind: Kind::Leave, op: Op::Truncate, keyed: None, before: None, after: None })
            }
            Item::Broken(t, why) if *t == table => return Err(why.clone()),
            _ => {}
        }
    }
    Ok(out)
}
