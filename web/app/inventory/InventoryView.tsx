// The Inventory page: the heat map of stock against reorder points (categories joined from
// `products` here, in the page), the low-stock list (a heat-map cell narrows it:
// `?warehouse=&category=`), and one SKU across warehouses (`?sku=`). All of it comes from one
// incremental subscription of the role's stock rows; a role that may only aggregate stock gets
// the per-warehouse summary instead.
"use client";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useMemo } from "react";
import { useLiveResult, useLiveRows } from "@/lib/live/hooks";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { canSubscribe } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { ProductCategories, StockRows, type StockRow } from "./documents";
import { LowStockList } from "./LowStockList";
import { SkuDrillDown } from "./SkuDrillDown";
import { StockHeatMap } from "./StockHeatMap";
import { heatMap, lowStock } from "./stockMath";
import { WarehouseSummary } from "./WarehouseSummary";

export function InventoryView() {
  const { session, store, schema } = useLiveContext();
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const sku = params.get("sku");
  const cellWarehouse = params.get("warehouse");
  const cellCategory = params.get("category");
  const cell = cellWarehouse && cellCategory ? { warehouse: cellWarehouse, category: cellCategory } : null;
  const rowsDocument = usePrunedDocument(StockRows, schema).document;
  const productsDocument = usePrunedDocument(ProductCategories, schema).document;
  const stock = useLiveRows<StockRow>(store, rowsDocument, "inventoryPatches", ["sku", "warehouseId"]);
  const products = useLiveResult(store, productsDocument);
  const productList = products.data?.products;
  const categoryOf = useMemo(() => new Map((productList ?? []).map((p) => [p.sku, p.category])), [productList]);
  const nameOf = useMemo(() => new Map((productList ?? []).map((p) => [p.sku, p.name])), [productList]);
  const map = useMemo(() => heatMap(stock.rows, categoryOf), [stock.rows, categoryOf]);
  const low = useMemo(() => {
    const all = lowStock(stock.rows);
    return cellWarehouse && cellCategory ? all.filter((r) => r.warehouseId === cellWarehouse && (categoryOf.get(r.sku) ?? "?") === cellCategory) : all;
  }, [stock.rows, cellWarehouse, cellCategory, categoryOf]);
  const skuRows = useMemo(() => (sku ? stock.rows.filter((r) => r.sku === sku) : []), [stock.rows, sku]);
  const setParam = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(params.toString());
    for (const [name, value] of Object.entries(changes)) {
      if (value) next.set(name, value);
      else next.delete(name);
    }
    const query = next.toString();
    router.replace(query ? `${pathname}?${query}` : pathname, { scroll: false });
  };
  const setSku = (next: string | null) => setParam({ sku: next });

  if (!session) return null;
  const rowsReadable = schema ? canSubscribe(schema, "inventoryPatches") : true;
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>Inventory</h1>
      {!rowsReadable ? (
        <section className="panel">
          <h2>Stock per warehouse</h2>
          <WarehouseSummary store={store} schema={schema} />
        </section>
      ) : (
        <>
          {sku ? <SkuDrillDown sku={sku} name={nameOf.get(sku) ?? null} rows={skuRows} changes={stock.changes} now={stock.receivedAt ?? 0} onClose={() => setSku(null)} /> : null}
          <section className="panel" aria-labelledby="heat-title">
            <h2 id="heat-title">Below reorder point · warehouse × category</h2>
            {stock.error ? <p className="error">{stock.error}</p> : null}
            {!productsDocument ? <p className="panel-note">Your role cannot read products: categories are unknown (“?”).</p> : null}
            {stock.status === "loading" ? <p className="muted">Loading stock…</p> : <StockHeatMap map={map} selected={cell} onSelect={(c) => setParam({ warehouse: c?.warehouse ?? null, category: c?.category ?? null })} />}
          </section>
          <section className="panel" aria-labelledby="low-title">
            <h2 id="low-title">Low stock{cell ? ` · ${cell.warehouse} · ${cell.category}` : ""}</h2>
            <LowStockList rows={low} changes={stock.changes} now={stock.receivedAt ?? 0} categoryOf={categoryOf} onSku={setSku} />
          </section>
        </>
      )}
    </>
  );
}
