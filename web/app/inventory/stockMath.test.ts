// Heat map and low-stock arithmetic of the Inventory page.
import { describe, expect, it } from "vitest";
import { cellKey, heatMap, lowStock } from "./stockMath";

const row = (sku: string, warehouseId: string, onHand: number, reorderPoint: number) => ({ sku, warehouseId, onHand, reorderPoint });

describe("stock arithmetic", () => {
  it("groups rows by warehouse and category and counts the low ones (on hand below the reorder point)", () => {
    const categories = new Map([
      ["ELE-1", "electronics"],
      ["ELE-2", "electronics"],
      ["TOY-1", "toys"],
    ]);
    const map = heatMap([row("ELE-1", "WH-BER", 5, 10), row("ELE-2", "WH-BER", 10, 10), row("TOY-1", "WH-MAD", 0, 1), row("XXX-9", "WH-MAD", 3, 1)], categories);
    expect(map.warehouses).toEqual(["WH-BER", "WH-MAD"]);
    expect(map.categories).toEqual(["?", "electronics", "toys"]);
    expect(map.cells.get(cellKey("WH-BER", "electronics"))).toEqual({ rows: 2, low: 1, onHand: 15, reorderPoint: 20 });
    expect(map.cells.get(cellKey("WH-MAD", "toys"))).toEqual({ rows: 1, low: 1, onHand: 0, reorderPoint: 1 });
    expect(map.cells.get(cellKey("WH-BER", "toys"))).toBeUndefined();
  });

  it("lists low rows furthest below their reorder point first", () => {
    const rows = [row("A", "W1", 9, 10), row("B", "W1", 0, 20), row("C", "W2", 10, 10), row("D", "W2", 1, 5)];
    expect(lowStock(rows).map((r) => r.sku)).toEqual(["B", "D", "A"]);
  });
});
