//! Rows events into changes: every row image of a watched table read through the table's
//! catalog, in the replica's column order.
//!
//! Pure, so binlog bytes captured from a real server are checked without one
//! (`tests/mariadb_decoder_capture.rs`), including truncated and damaged events: an event that
//! cannot be read is an error saying why, never a skipped row and never a panic.

use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;

use super::catalog::MyTable;
use crate::change::{Change, Image, Key, Op};
use crate::registry::TableId;
use crate::value::Value;

/// The binlog's rows event types: v1 and v2 write/update/delete. (MariaDB's compressed ones are
/// refused by the preflight: `log_bin_compress=OFF`.)
const ROWS_EVENTS: [u8; 6] = [23, 24, 25, 30, 31, 32];

/// Whether an event of this raw type carries row images.
pub fn is_rows_event(event_type: u8) -> bool {
    ROWS_EVENTS.contains(&event_type)
}

/// The rows event in `event`; `Ok(None)` when it is of another type.
pub fn rows_event(event: &Event) -> Result<Option<RowsEventData<'_>>, String> {
    if !is_rows_event(event.header().event_type_raw()) {
        return Ok(None);
    }
    match event.read_data() {
        Ok(Some(EventData::RowsEvent(rows))) => Ok(Some(rows)),
        Ok(other) => Err(format!("a rows event read as {:?}", other.map(|d| std::mem::discriminant(&d)))),
        Err(e) => Err(format!("a rows event cannot be read: {e}")),
    }
}

/// Row images of one rows event of table `id` as changes.
pub fn changes(
    id: TableId,
    table: &MyTable,
    rows: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
) -> Result<Vec<Change>, String> {
    // mysql_common decodes some values with unchecked arithmetic (a DECIMAL's last digit group
    // is scaled by a plain multiplication), so bytes no server writes can make it panic (found
    // by tests/fuzz.rs; release builds check its overflows too, see Cargo.toml). Such an event
    // is malformed, and is reported like any other, not as a crashed session.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(id, table, rows, tme))).unwrap_or_else(|panic| {
        Err(format!("a rows event cannot be decoded ({})", crate::source::supervise::panic_message(panic.as_ref())))
    })
}

fn decode(
    id: TableId,
    table: &MyTable,
    rows: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
) -> Result<Vec<Change>, String> {
    if tme.columns_count() as usize != table.columns.len() {
        return Err(format!(
            "the binlog has {} columns where the table had {} (changed without DDL opslive saw)",
            tme.columns_count(),
            table.columns.len()
        ));
    }
    let key = &table.schema.key;
    let mut out = Vec::new();
    for pair in rows.rows(tme) {
        let (before, after) = pair.map_err(|e| format!("a row image cannot be read: {e}"))?;
        let before = before.map(|r| image(table, r)).transpose()?;
        let after = after.map(|r| image(table, r)).transpose()?;
        let change = match (before, after) {
            (None, Some(after)) => Change {
                table: id,
                op: Op::Insert,
                key: Key::of(&after, key),
                before: None,
                after: Some(Image::full(after)),
            },
            (Some(before), Some(after)) => Change {
                table: id,
                op: Op::Update,
                key: Key::of(&after, key),
                before: Some(Image::full(before)),
                after: Some(Image::full(after)),
            },
            (Some(before), None) => Change {
                table: id,
                op: Op::Delete,
                key: Key::of(&before, key),
                before: Some(Image::full(before)),
                after: None,
            },
            (None, None) => return Err("a row with neither a before nor an after image".into()),
        };
        out.push(change);
    }
    Ok(out)
}

/// A row image in the replica's column order (excluded columns dropped).
fn image(table: &MyTable, row: BinlogRow) -> Result<Vec<Value>, String> {
    let values = row.unwrap();
    if values.len() != table.columns.len() {
        return Err(format!(
            "a row image has {} of {} columns (binlog_row_image must be FULL)",
            values.len(),
            table.columns.len()
        ));
    }
    let mut out = vec![Value::Null; table.schema.columns.len()];
    for (column, v) in table.columns.iter().zip(values) {
        let Some(at) = column.keep else { continue };
        let v = match v {
            BinlogValue::Value(v) => v,
            other => return Err(format!("column `{}`: unexpected {other:?}", column.name)),
        };
        out[at] = super::value::from_binlog(&column.kind, v).map_err(|e| format!("column `{}`: {e}", column.name))?;
    }
    Ok(out)
}
