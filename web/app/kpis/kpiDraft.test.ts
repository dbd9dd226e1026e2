// The KPI builder's translations: draft → KpiInput, KPI filter → GraphQL where, draft → preview query.
import { describe, expect, it } from "vitest";
import { columnEnum, kpiFilterToWhere, previewQuery, toKpiInput, type KpiDraft } from "./kpiDraft";

const base: KpiDraft = {
  name: " Orders per minute ",
  table: "orders",
  aggregate: "COUNT",
  measure: { kind: "column", column: "total" },
  filter: "",
  groupBy: ["channel"],
  window: { column: "createdAt", last: "PT1M", today: false },
  comparison: "",
  unit: "orders/min",
  viewRole: "",
  viewClaims: "",
};

describe("the KPI builder", () => {
  it("saves a count without a column, a sum with one, an expression as an expression", () => {
    expect(toKpiInput(base)).toEqual({ name: "Orders per minute", table: "orders", aggregate: "COUNT", groupBy: ["channel"], window: { column: "createdAt", last: "PT1M" }, unit: "orders/min" });
    const sum = toKpiInput({ ...base, aggregate: "SUM", groupBy: [], window: null, filter: '{"status": {"eq": "paid"}}', comparison: "DAY_BEFORE", viewRole: "warehouse_lead", viewClaims: '{"warehouses": ["WH-BER"]}' });
    expect(sum).toMatchObject({ column: "total", filter: { status: { eq: "paid" } }, comparison: "DAY_BEFORE", view: { role: "warehouse_lead", claims: { warehouses: ["WH-BER"] } } });
    expect(toKpiInput({ ...base, aggregate: "P90", measure: { kind: "difference", later: "firstResponseAt", earlier: "openedAt" } })["expression"]).toEqual({ difference: { later: "firstResponseAt", earlier: "openedAt" } });
    expect(() => toKpiInput({ ...base, filter: "{nope" })).toThrow(/not JSON/);
    expect(() => toKpiInput({ ...base, filter: "[1]" })).toThrow(/object/);
  });

  it("renames column and ago operands for GraphQL, through and/or/not", () => {
    expect(kpiFilterToWhere({ onHand: { lt: { column: "reorderPoint" } }, or: [{ createdAt: { lt: { ago: "PT10M" }, gt: "2026-01-01T00:00:00Z" } }], status: { in: ["a"] } })).toEqual({
      onHand: { ltColumn: "reorderPoint" },
      or: [{ createdAt: { ltAgo: "PT10M", gt: "2026-01-01T00:00:00Z" } }],
      status: { in: ["a"] },
    });
  });

  it("previews as the table's live aggregate, the window as a relative-time filter", () => {
    const preview = previewQuery({ ...base, filter: '{"status": {"neq": "cancelled"}}', groupBy: ["channel", "warehouseId"] }, "Orders")!;
    expect(preview.query).toBe("subscription KpiPreview($where: OrdersBoolExp) { ordersAggregate(where: $where, groupBy: [CHANNEL, WAREHOUSE_ID]) { key { channel warehouseId } count } }");
    expect(preview.variables).toEqual({ where: { status: { neq: "cancelled" }, createdAt: { gtAgo: "PT1M" } } });
    expect(preview.valueOf({ count: 4 })).toBe(4);
    const p90 = previewQuery({ ...base, aggregate: "P90", groupBy: [], window: null }, "Orders")!;
    expect(p90.query).toContain("ordersAggregate(where: $where) { p90 { total } }");
    expect(p90.valueOf({ p90: { total: "12.50" } })).toBe("12.50");
    expect(previewQuery({ ...base, aggregate: "AVG", measure: { kind: "age", column: "createdAt" } }, "Orders")).toBeNull();
    expect(columnEnum("reorderPoint")).toBe("REORDER_POINT");
  });
});
