import { describe, expect, it } from "vitest";
import { healthBySource } from "./sourceHealth";

const kpi = (source: string, measure: string, valueFloat: number | null, ready = true) => ({ valueFloat, ready, source: { source, measure } });

describe("healthBySource", () => {
  it("folds the built-in KPIs into one row per source, unknown measures as null", () => {
    const rows = healthBySource([
      kpi("shop", "LAG_SECONDS", 0.25),
      kpi("helpdesk", "LAG_BYTES", 10),
      kpi("shop", "HEARTBEAT_AGE_SECONDS", null, false),
      kpi("shop", "CHANGES_PER_SECOND", 12.5),
      kpi("shop", "SOMETHING_NEW", 1),
      { valueFloat: 3, ready: true, source: null },
    ]);
    expect(rows.map((r) => r.source)).toEqual(["helpdesk", "shop"]);
    expect(rows[1]).toEqual({ source: "shop", LAG_BYTES: null, LAG_SECONDS: 0.25, RETAINED_WAL_BYTES: null, HEARTBEAT_AGE_SECONDS: null, CHANGES_PER_SECOND: 12.5 });
  });
});
