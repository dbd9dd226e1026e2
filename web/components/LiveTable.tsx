// A virtualised live table (TanStack Virtual): only the rows in view are in the DOM, so a result
// of thousands of rows patched many times a second stays cheap. A cell whose value changed in the
// latest update that touched its row flashes briefly (a new row flashes whole, as one element);
// the flash is a CSS animation restarted by keying the element on the change's stamp, so no
// timers run per cell.
"use client";
import { useRef, type ReactNode } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { keyOf, type LiveRow, type RowChange } from "@/lib/live/patches";

export interface LiveColumn<Row extends LiveRow> {
  readonly field: string;
  readonly label: string;
  readonly numeric?: boolean;
  readonly width?: string;
  readonly render?: (row: Row) => ReactNode;
}

/** How long after a change a cell still starts its flash when it scrolls into view (ms). */
const FLASH_MS = 1_200;
const ROW_HEIGHT = 28;

export function LiveTable<Row extends LiveRow>({
  label,
  columns,
  rows,
  changes,
  keyFields,
  height = 480,
  now = Date.now(),
  emptyText = "No rows.",
}: {
  label: string;
  columns: readonly LiveColumn<Row>[];
  rows: readonly Row[];
  changes: ReadonlyMap<string, RowChange>;
  keyFields: readonly string[];
  height?: number;
  /** The time the flashes are measured against (the snapshot's arrival). */
  now?: number;
  emptyText?: string;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
    initialRect: { width: 800, height },
  });
  const template = columns.map((c) => c.width ?? "minmax(80px, 1fr)").join(" ");

  return (
    <div className="live-table live-value" role="table" aria-label={label} aria-rowcount={rows.length}>
      <div className="live-table-head" role="row" style={{ gridTemplateColumns: template }}>
        {columns.map((c) => (
          <span key={c.field} role="columnheader" className={c.numeric ? "num" : undefined}>
            {c.label}
          </span>
        ))}
      </div>
      <div ref={scroller} className="live-table-body" style={{ height }}>
        {rows.length === 0 ? <p className="muted" style={{ padding: 8 }}>{emptyText}</p> : null}
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((item) => {
            const row = rows[item.index] as Row;
            const key = keyOf(keyFields, row);
            const change = changes.get(key);
            const fresh = change !== undefined && now - change.at < FLASH_MS ? change : null;
            // A new row flashes as one element (one animation, not one per cell: under a burst
            // every visible row is new); a changed row flashes the cells that changed.
            const newRow = fresh !== null && fresh.fields === null;
            return (
              <div
                key={newRow ? `${key}:${fresh.stamp}` : key}
                role="row"
                data-key={key}
                className={`live-table-row${newRow ? " flash" : ""}`}
                style={{ gridTemplateColumns: template, transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
              >
                {columns.map((c) => {
                  const flashing = fresh !== null && fresh.fields !== null && fresh.fields.has(c.field);
                  return (
                    <span
                      key={flashing ? `${c.field}:${fresh.stamp}` : c.field}
                      role="cell"
                      data-field={c.field}
                      className={`${c.numeric ? "num" : ""}${flashing ? " flash" : ""}`}
                    >
                      {c.render ? c.render(row) : formatCell(row[c.field])}
                    </span>
                  );
                })}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
