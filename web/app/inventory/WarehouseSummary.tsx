// For roles that may only aggregate stock (no rows, so no SKU or category detail): units on hand
// and rows below their reorder point per warehouse, live.
"use client";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import type { RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { WarehouseLowStock, WarehouseStock } from "./documents";

export function WarehouseSummary({ store, schema }: { store: LiveStore | null; schema: RoleSchema | null }) {
  const stock = useLiveResult(store, usePrunedDocument(WarehouseStock, schema).document);
  const low = useLiveResult(store, usePrunedDocument(WarehouseLowStock, schema).document);
  const lowBy = new Map((low.data?.inventoryAggregate ?? []).map((g) => [g.key.warehouseId ?? "?", g.count]));
  const groups = (stock.data?.inventoryAggregate ?? []).slice().sort((a, b) => (a.key.warehouseId ?? "").localeCompare(b.key.warehouseId ?? ""));
  return (
    <div>
      <p className="panel-note">Your role sees stock as totals per warehouse (no SKU rows, so no categories or drill-down).</p>
      <table className="heatmap live-value" aria-label="Stock per warehouse">
        <thead>
          <tr>
            <th>Warehouse</th>
            <th>SKUs</th>
            <th>On hand</th>
            <th>Below reorder point</th>
          </tr>
        </thead>
        <tbody>
          {groups.map((g) => (
            <tr key={g.key.warehouseId ?? "?"} data-warehouse={g.key.warehouseId}>
              <th scope="row">{g.key.warehouseId}</th>
              <td className="num">{g.count}</td>
              <td className="num">{g.sum.onHand ?? "—"}</td>
              <td className="num">{lowBy.get(g.key.warehouseId ?? "?") ?? 0}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {stock.error ? <p className="error">{stock.error}</p> : null}
    </div>
  );
}
