// One SKU across the warehouses the role can see: on hand, reserved and reorder point, live.
"use client";
import { LiveTable, type LiveColumn } from "@/components/LiveTable";
import type { RowChange } from "@/lib/live/patches";
import type { StockRow } from "./documents";
import { isLow } from "./stockMath";

const COLUMNS: readonly LiveColumn<StockRow>[] = [
  { field: "warehouseId", label: "Warehouse", width: "110px" },
  { field: "onHand", label: "On hand", numeric: true, width: "80px" },
  { field: "reserved", label: "Reserved", numeric: true, width: "80px" },
  { field: "reorderPoint", label: "Reorder at", numeric: true, width: "90px" },
  { field: "low", label: "", width: "60px", render: (row) => (isLow(row) ? <span className="error">low</span> : null) },
  { field: "updatedAt", label: "Updated", render: (row) => new Date(row.updatedAt).toLocaleTimeString() },
];

export function SkuDrillDown({ sku, name, rows, changes, now, onClose }: { sku: string; name: string | null; rows: readonly StockRow[]; changes: ReadonlyMap<string, RowChange>; now: number; onClose: () => void }) {
  const total = rows.reduce((sum, row) => sum + row.onHand, 0);
  return (
    <section className="panel" aria-labelledby="sku-title" data-sku={sku}>
      <div className="toolbar">
        <h2 id="sku-title" style={{ margin: 0 }}>
          {sku}
          {name ? ` · ${name}` : ""} · {total} on hand in {rows.length} warehouses
        </h2>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      <LiveTable label={`Stock of ${sku}`} columns={COLUMNS} rows={rows} changes={changes} keyFields={["sku", "warehouseId"]} now={now} height={6 * 28} emptyText="Not stocked in a warehouse you can see." />
    </section>
  );
}
