// Reconciliation batches, live: matching progress as a bar (matched of expected, by count and
// amount), open exceptions per batch, status. A batch id opens its exceptions.
"use client";
import { LiveTable, type LiveColumn } from "@/components/LiveTable";
import type { RowChange } from "@/lib/live/patches";
import type { Batch } from "./documents";

export function matchedShare(batch: Pick<Batch, "expectedCount" | "matchedCount">): number {
  return batch.expectedCount > 0 ? Math.min(1, batch.matchedCount / batch.expectedCount) : 1;
}

export function BatchTable({ rows, changes, now, openExceptions, onOpen }: { rows: readonly Batch[]; changes: ReadonlyMap<string, RowChange>; now: number; openExceptions: ReadonlyMap<string, number> | null; onOpen: (id: string) => void }) {
  const columns: LiveColumn<Batch>[] = [
    {
      field: "id",
      label: "Batch",
      numeric: true,
      width: "80px",
      render: (row) => (
        <button type="button" className="link" onClick={() => onOpen(row.id)}>
          {row.id}
        </button>
      ),
    },
    { field: "account", label: "Account", width: "minmax(100px, 1fr)" },
    { field: "batchDate", label: "Date", width: "100px" },
    {
      field: "matchedCount",
      label: "Matched",
      width: "minmax(160px, 2fr)",
      render: (row) => (
        <span className="progress" title={`${row.matchedAmount} of ${row.expectedAmount}`}>
          <span className="progress-fill" style={{ transform: `scaleX(${matchedShare(row)})` }} />
          <span className="progress-text">
            {row.matchedCount} / {row.expectedCount}
          </span>
        </span>
      ),
    },
    { field: "exceptions", label: "Open exceptions", numeric: true, width: "120px", render: (row) => (openExceptions ? (openExceptions.get(row.id) ?? 0) : "—") },
    { field: "status", label: "Status", width: "90px", render: (row) => <span className={row.status === "exception" ? "error" : undefined}>{row.status}</span> },
  ];
  return <LiveTable label="Reconciliation batches" columns={columns} rows={rows} changes={changes} keyFields={["id"]} now={now} height={420} emptyText="No batches." />;
}
