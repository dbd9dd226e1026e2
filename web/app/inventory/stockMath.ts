// Stock arithmetic for the Inventory page, pure for tests: a row is low when on hand is below its
// reorder point; the heat map cell (warehouse × category) says how many of its rows are low.

export interface StockLike {
  readonly sku: string;
  readonly warehouseId: string;
  readonly onHand: number;
  readonly reorderPoint: number;
}

export function isLow(row: StockLike): boolean {
  return row.onHand < row.reorderPoint;
}

export interface HeatCell {
  readonly rows: number;
  readonly low: number;
  readonly onHand: number;
  readonly reorderPoint: number;
}

export interface HeatMap {
  readonly warehouses: readonly string[];
  readonly categories: readonly string[];
  /** `cell(warehouse, category)`; undefined where the warehouse stocks nothing of the category. */
  readonly cells: ReadonlyMap<string, HeatCell>;
}

export const cellKey = (warehouse: string, category: string) => `${warehouse}\u0000${category}`;

/** Groups rows by warehouse and the category of their SKU (`categoryOf`; unknown SKUs under "?"). */
export function heatMap(rows: readonly StockLike[], categoryOf: ReadonlyMap<string, string>): HeatMap {
  const cells = new Map<string, { rows: number; low: number; onHand: number; reorderPoint: number }>();
  const warehouses = new Set<string>();
  const categories = new Set<string>();
  for (const row of rows) {
    const category = categoryOf.get(row.sku) ?? "?";
    warehouses.add(row.warehouseId);
    categories.add(category);
    const key = cellKey(row.warehouseId, category);
    const cell = cells.get(key) ?? { rows: 0, low: 0, onHand: 0, reorderPoint: 0 };
    cell.rows += 1;
    cell.low += isLow(row) ? 1 : 0;
    cell.onHand += row.onHand;
    cell.reorderPoint += row.reorderPoint;
    cells.set(key, cell);
  }
  return { warehouses: [...warehouses].sort(), categories: [...categories].sort(), cells };
}

/** Low rows, the furthest below their reorder point first. */
export function lowStock<Row extends StockLike>(rows: readonly Row[]): Row[] {
  return rows.filter(isLow).sort((a, b) => a.onHand - a.reorderPoint - (b.onHand - b.reorderPoint) || a.sku.localeCompare(b.sku) || a.warehouseId.localeCompare(b.warehouseId));
}
