//! A `…Changes` subscription checked and compiled when it subscribes: the filter (`where` and
//! the role's row filter, claims bound), where the stream starts (the client's cursor, checked
//! against the log now so a stale one is refused at once), and what each message selects.

use async_graphql::SelectionField;
use async_graphql::dynamic::ResolverContext;

use super::super::errors::{Code, error};
use super::super::live::compile::{Handover, Updates, hand_over_any};
use super::super::live::projection::{Fields, RowField, key_object, merged, object, rows_merged, unexpected};
use super::super::live::schema::Names;
use super::super::resolve::{self, Scope};
use super::super::view::TableView;
use super::schema::ChangeNames;
use crate::change::Position;
use crate::changes::{ChangeFeed, Cursor};
use crate::query::Filter;
use crate::registry::TableId;

/// A field of a change message (`…ChangeBatch`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BatchField {
    Cursor,
    Position,
    CommitTs,
    Xid,
    Events(Fields<EventField>),
    Typename(String),
}

/// A field of one event (`…Change`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventField {
    Kind,
    Op,
    Key(Fields<RowField>),
    Before(Fields<RowField>),
    After(Fields<RowField>),
    Typename(String),
}

/// A compiled change stream.
#[derive(Debug)]
pub struct ChangesRequest {
    pub table: TableId,
    /// The table's source: cursors carry its position.
    pub source: crate::change::SourceName,
    pub key: Vec<usize>,
    pub filter: Filter,
    /// The last log entry the client has: the stream sends what comes after it.
    pub start: u64,
    /// Whether the client came without a cursor: its first message is then the cursor to
    /// resume from, with no events, at `position`.
    pub announce: bool,
    /// Where the table's source stood when the stream started: the position of cursor-only
    /// messages until the stream reads a transaction of the table.
    pub position: Position,
    /// A cursor of another log (another instance, an earlier process): transactions at or
    /// below this position are the client's already, should this log reach them only now.
    pub through: Option<Position>,
    pub fields: Fields<BatchField>,
    /// The response key of the root field.
    pub field: String,
}

pub fn changes(view: &TableView, ctx: &ResolverContext<'_>) -> async_graphql::Result<Updates> {
    let scope = ctx.data::<Scope>()?;
    resolve::ready(view, &scope.replica)?;
    let feed =
        ctx.data::<ChangeFeed>().map_err(|_| error(Code::Internal, "change streams are not running on this server"))?;
    let filter = resolve::filter(view, ctx, scope)?;
    if filter.is_time_relative() {
        return Err(error(
            Code::BadUserInput,
            "a change stream's filter cannot compare with a time relative to now (`ago`): rows would enter and \
             leave it with no transaction to tell; use a live query for that",
        ));
    }
    let after = match ctx.args.get("after") {
        Some(v) if !v.is_null() => Some(v.string()?.to_string()),
        _ => None,
    };
    let (start, through, announce) = match after {
        Some(text) => {
            let cursor = Cursor::parse(&text).map_err(|e| error(Code::BadUserInput, e.to_string()))?;
            let resumed = feed.resume(cursor, view.id(), &view.schema.spec.source).map_err(|e| {
                feed.stats.expired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match e {
                    crate::changes::Expired::Ahead => error(Code::BadUserInput, e.to_string()),
                    e => error(Code::CursorExpired, e.to_string()),
                }
            })?;
            (resumed.seq, resumed.through, false)
        }
        None => (feed.head().seq, None, true),
    };
    let position = scope.replica.applied_position(&view.schema.spec.source).max(through.unwrap_or_default());
    let field = ctx.ctx.field();
    let request = ChangesRequest {
        table: view.id(),
        source: view.schema.spec.source.clone(),
        key: view.schema.key.clone(),
        filter,
        start,
        announce,
        position,
        through,
        fields: batch_fields(view, &field)?,
        field: field.alias().unwrap_or(field.name()).to_string(),
    };
    hand_over_any(ctx, Handover::Changes(Box::new(request)))
}

fn batch_fields(view: &TableView, field: &SelectionField<'_>) -> async_graphql::Result<Fields<BatchField>> {
    let names = ChangeNames::of(view);
    let key_name = Names::of(view).key;
    object(field, |name, same| {
        Ok(match name {
            "__typename" => BatchField::Typename(names.batch.clone()),
            "cursor" => BatchField::Cursor,
            "position" => BatchField::Position,
            "commitTs" => BatchField::CommitTs,
            "xid" => BatchField::Xid,
            "events" => BatchField::Events(merged(same, |s| {
                object(s, |name, same| {
                    Ok(match name {
                        "__typename" => EventField::Typename(names.change.clone()),
                        "kind" => EventField::Kind,
                        "op" => EventField::Op,
                        "key" => EventField::Key(key_object(view, key_name.clone(), same)?),
                        "before" => EventField::Before(rows_merged(view, same)?),
                        "after" => EventField::After(rows_merged(view, same)?),
                        other => return Err(unexpected(other)),
                    })
                })
            })?),
            other => return Err(unexpected(other)),
        })
    })
}
