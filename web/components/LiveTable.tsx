// A virtualised live table (TanStack Virtual): only the rows in view are in the DOM, so a result
// of thousands of rows patched many times a second stays cheap. A cell whose value changed in the
// latest update that touched its row flashes briefly (a new row flashes whole, as one element).
// The flash is a background that fades in a few steps, which the table moves with one timer, not
// a CSS animation: an animated element is a compositor layer of its own, and with rows arriving
// many times a second the browser spent more time building layers than drawing the table.
"use client";
import { memo, useEffect, useRef, useState, type ReactNode } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { keyOf, type LiveRow, type RowChange } from "@/lib/live/patches";

export interface LiveColumn<Row extends LiveRow> {
  readonly field: string;
  readonly label: string;
  readonly numeric?: boolean;
  readonly width?: string;
  readonly render?: (row: Row) => ReactNode;
}

/** How long a change flashes (ms), and in how many steps its background fades. */
export const FLASH_MS = 1_200;
export const FLASH_STEPS = 3;
const ROW_HEIGHT = 28;

/** The step of a change's flash at `now` (0 brightest), or null once it is over. */
export function flashStep(change: RowChange, now: number): number | null {
  const age = Math.max(0, now - change.at);
  return age < FLASH_MS ? Math.floor((age * FLASH_STEPS) / FLASH_MS) : null;
}

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

  // The table's clock: the snapshot's arrival, moved on by a timer to the next flash step while
  // a row in view is flashing (under live traffic new snapshots move it first).
  const [ticked, setTicked] = useState(0);
  const clock = Math.max(now, ticked);
  const items = virtualizer.getVirtualItems();
  let nextStepAt = Infinity;
  const shown = items.map((item) => {
    const row = rows[item.index] as Row;
    const key = keyOf(keyFields, row);
    const change = changes.get(key);
    const step = change === undefined ? null : flashStep(change, clock);
    if (change !== undefined && step !== null) nextStepAt = Math.min(nextStepAt, change.at + ((step + 1) * FLASH_MS) / FLASH_STEPS);
    return { key, row, change: step === null ? null : (change ?? null), step };
  });
  // Armed again only when the next step moves (not on every snapshot).
  const clockRef = useRef(clock);
  clockRef.current = clock;
  useEffect(() => {
    if (nextStepAt === Infinity) return;
    const timer = setTimeout(() => setTicked((t) => Math.max(t, nextStepAt)), Math.max(0, nextStepAt - clockRef.current));
    return () => clearTimeout(timer);
  }, [nextStepAt]);
  // The rows in view sit in normal flow inside one block moved to the first one's offset: a row
  // arriving at the top inserts one element and drops one at the bottom, and the rows between
  // keep their props (no per-row offsets to rewrite), so React skips them (`TableRow` is memo).
  const offset = items[0]?.start ?? 0;
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
          <div style={{ transform: `translateY(${offset}px)` }}>
            {shown.map(({ key, row, change, step }) => (
              <TableRow key={key} rowKey={key} row={row} change={change} step={step} columns={columns} template={template} />
            ))}
          </div>
        </div>
      </div>
    </div>
  );
}

interface TableRowProps<Row extends LiveRow> {
  rowKey: string;
  row: Row;
  /** The row's change while it flashes, and the flash's step. */
  change: RowChange | null;
  step: number | null;
  columns: readonly LiveColumn<Row>[];
  template: string;
}

// Memoised on identities the store keeps stable: a row object is replaced only when the row
// changes, a change record only when a new update touches the row. The flash's step is an
// attribute of the row (the stylesheet shades the row or its flashing cells by it), so a step
// passing re-renders the row element and not its cells.
const TableRow = memo(function TableRow<Row extends LiveRow>({ rowKey, row, change, step, columns, template }: TableRowProps<Row>) {
  const newRow = change !== null && change.fields === null;
  return (
    <div role="row" data-key={rowKey} className={`live-table-row${newRow ? " flash" : ""}`} data-flash={step ?? undefined} style={{ gridTemplateColumns: template, height: ROW_HEIGHT }}>
      <RowCells row={row} changed={change?.fields ?? null} columns={columns} />
    </div>
  );
}) as <Row extends LiveRow>(props: TableRowProps<Row> & { key?: string }) => ReactNode;

const RowCells = memo(function RowCells<Row extends LiveRow>({ row, changed, columns }: { row: Row; changed: ReadonlySet<string> | null; columns: readonly LiveColumn<Row>[] }) {
  return columns.map((c) => (
    <span key={c.field} role="cell" data-field={c.field} className={`${c.numeric ? "num" : ""}${changed?.has(c.field) ? " flash" : ""}`}>
      {c.render ? c.render(row) : formatCell(row[c.field])}
    </span>
  ));
}) as <Row extends LiveRow>(props: { row: Row; changed: ReadonlySet<string> | null; columns: readonly LiveColumn<Row>[] }) => ReactNode;

export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
