// One batch's exceptions, live (a new exception or a resolution shows on its transaction).
"use client";
import { LiveTable, type LiveColumn } from "@/components/LiveTable";
import { useLiveRows } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import type { RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { BatchExceptions, type BatchException } from "./documents";

const COLUMNS: readonly LiveColumn<BatchException>[] = [
  { field: "id", label: "Exception", numeric: true, width: "90px" },
  { field: "kind", label: "Kind", width: "130px" },
  { field: "amount", label: "Amount", numeric: true, width: "100px" },
  { field: "detail", label: "Detail", width: "minmax(160px, 3fr)" },
  { field: "createdAt", label: "Raised", width: "100px", render: (row) => new Date(row.createdAt).toLocaleTimeString() },
  { field: "resolvedAt", label: "Resolved", width: "100px", render: (row) => (row.resolvedAt ? new Date(row.resolvedAt).toLocaleTimeString() : <span className="error">open</span>) },
];

export function ExceptionList({ store, schema, batchId, onClose }: { store: LiveStore | null; schema: RoleSchema | null; batchId: string; onClose: () => void }) {
  const { document } = usePrunedDocument(BatchExceptions, schema);
  const snapshot = useLiveRows<BatchException>(store, document, "reconciliationExceptionsPatches", ["id"], { batchId });
  return (
    <section className="panel" aria-labelledby="exceptions-title" data-batch={batchId}>
      <div className="toolbar">
        <h2 id="exceptions-title" style={{ margin: 0 }}>
          Exceptions of batch {batchId}
        </h2>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      {!document && schema ? <p className="panel-note">Your role cannot read reconciliation exceptions.</p> : null}
      {snapshot.error ? <p className="error">{snapshot.error}</p> : null}
      <LiveTable label={`Exceptions of batch ${batchId}`} columns={COLUMNS} rows={snapshot.rows} changes={snapshot.changes} keyFields={["id"]} now={snapshot.receivedAt ?? 0} height={220} emptyText={snapshot.status === "loading" ? "Loading…" : "No exceptions."} />
    </section>
  );
}
