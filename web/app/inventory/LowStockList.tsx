// The low-stock list: stock rows with less on hand than their reorder point, the furthest below
// first, live (a row enters or leaves on the transaction that crosses the line). A SKU opens its
// drill-down across warehouses.
"use client";
import { LiveTable, type LiveColumn } from "@/components/LiveTable";
import type { RowChange } from "@/lib/live/patches";
import type { StockRow } from "./documents";

export function LowStockList({ rows, changes, now, categoryOf, onSku }: { rows: readonly StockRow[]; changes: ReadonlyMap<string, RowChange>; now: number; categoryOf: ReadonlyMap<string, string>; onSku: (sku: string) => void }) {
  const columns: LiveColumn<StockRow>[] = [
    {
      field: "sku",
      label: "SKU",
      width: "110px",
      render: (row) => (
        <button type="button" className="link" onClick={() => onSku(row.sku)}>
          {row.sku}
        </button>
      ),
    },
    { field: "category", label: "Category", width: "110px", render: (row) => categoryOf.get(row.sku) ?? "?" },
    { field: "warehouseId", label: "Warehouse", width: "100px" },
    { field: "onHand", label: "On hand", numeric: true, width: "80px" },
    { field: "reorderPoint", label: "Reorder at", numeric: true, width: "90px" },
    { field: "reserved", label: "Reserved", numeric: true, width: "80px" },
  ];
  return (
    <div>
      <p className="muted" style={{ margin: "0 0 6px" }}>
        <span data-testid="low-stock-count">{rows.length}</span> stock rows below their reorder point
      </p>
      <LiveTable label="Low stock" columns={columns} rows={rows} changes={changes} keyFields={["sku", "warehouseId"]} now={now} height={320} emptyText="Nothing below its reorder point." />
    </div>
  );
}
