// The latest orders under the page's filters as a live, virtualised table: patches (not
// refetches) keep it current, changed cells flash. Columns the role cannot see are not shown.
"use client";
import { useMemo } from "react";
import { LiveTable, type LiveColumn } from "@/components/LiveTable";
import { useLiveRows } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { hasField, type RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { LatestOrders, type OrderRow, type OrdersWhere } from "./documents";

export const ORDERS_SHOWN = 500;

// One formatter for every cell: `toLocaleTimeString` builds a new one per call.
const PLACED = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });

const COLUMNS: readonly LiveColumn<OrderRow>[] = [
  { field: "id", label: "Order", numeric: true, width: "90px" },
  { field: "createdAt", label: "Placed", width: "90px", render: (row) => PLACED.format(new Date(row.createdAt)) },
  { field: "channel", label: "Channel", width: "110px" },
  { field: "status", label: "Status", width: "90px" },
  { field: "total", label: "Total", numeric: true, width: "100px", render: (row) => `${row.total} ${row.currency}` },
  { field: "warehouseId", label: "Warehouse", width: "100px" },
  { field: "region", label: "Region", width: "70px" },
  { field: "itemCount", label: "Items", numeric: true, width: "60px" },
];

export function OrdersTable({ store, schema, where }: { store: LiveStore | null; schema: RoleSchema | null; where: OrdersWhere }) {
  const { document, missing } = usePrunedDocument(LatestOrders, schema);
  const variables = useMemo(() => ({ where, limit: ORDERS_SHOWN }), [where]);
  const snapshot = useLiveRows<OrderRow>(store, document, "ordersPatches", ["id"], variables);
  const columns = useMemo(() => (schema ? COLUMNS.filter((c) => hasField(schema, "Orders", c.field)) : COLUMNS), [schema]);
  if (schema && !document) return <p className="panel-note">Your role cannot read orders row by row.</p>;
  return (
    <div>
      <p className="muted" style={{ margin: "0 0 6px" }}>
        The {ORDERS_SHOWN} latest orders{snapshot.asOf ? ` · as of ${snapshot.asOf.position}` : ""}
        {missing.length > 0 ? ` · your role cannot see ${missing.map((m) => m.replace(/^Orders\./, "")).join(", ")}` : ""}
        {snapshot.error ? <span className="error"> · {snapshot.error}</span> : null}
      </p>
      <LiveTable
        label="Latest orders"
        columns={columns}
        rows={snapshot.rows}
        changes={snapshot.changes}
        keyFields={["id"]}
        now={snapshot.receivedAt ?? 0}
        emptyText={snapshot.status === "loading" ? "Loading…" : "No orders match."}
      />
    </div>
  );
}
