// KPI tile arithmetic: grouped headlines, folded history, change and threshold proximity.
import { describe, expect, it } from "vitest";
import { change, foldHistory, headline, proximity, thresholdOf } from "./kpiMath";

const grouped = (aggregate: string, values: (number | null)[]) => ({
  aggregate,
  groupBy: ["channel"],
  valueFloat: null,
  groups: values.map((valueFloat, i) => ({ key: { channel: `c${i}` }, valueFloat })),
});

describe("KPI tile arithmetic", () => {
  it("adds the groups of a count, takes the largest group of a percentile", () => {
    expect(headline(grouped("COUNT", [3, 4, null]))).toBe(7);
    expect(headline(grouped("P90", [3, 9, 4]))).toBe(9);
    expect(headline(grouped("AVG", []))).toBeNull();
    expect(headline({ aggregate: "SUM", groupBy: [], valueFloat: 12.5, groups: [] })).toBe(12.5);
  });

  it("folds per-group history into one series in time order", () => {
    const points = [
      { at: "2026-12-04T10:01:00Z", lastFloat: 2 },
      { at: "2026-12-04T10:00:00Z", lastFloat: 1 },
      { at: "2026-12-04T10:00:00Z", lastFloat: 5 },
      { at: "2026-12-04T10:01:00Z", lastFloat: null },
    ];
    const t = Date.parse("2026-12-04T10:00:00Z") / 1000;
    expect(foldHistory("COUNT", points)).toEqual([
      [t, 6],
      [t + 60, 2],
    ]);
    expect(foldHistory("MAX", points)).toEqual([
      [t, 5],
      [t + 60, 2],
    ]);
  });

  it("says the change only against a non-zero earlier value", () => {
    expect(change(150, 100)).toBeCloseTo(0.5);
    expect(change(50, -100)).toBeCloseTo(1.5);
    expect(change(1, 0)).toBeNull();
    expect(change(null, 3)).toBeNull();
  });

  it("reads thresholds from rules on this KPI and measures the worst group against them", () => {
    const rule = { name: "spike", kpiId: "7", definition: { kpi: { kpi: 7, above: 120 } } };
    expect(thresholdOf(rule, "8")).toBeNull();
    const above = thresholdOf(rule, "7");
    expect(above).toEqual({ ruleName: "spike", above: 120 });
    expect(proximity(grouped("COUNT", [30, 60, 12]), above!)).toBeCloseTo(0.5);
    expect(proximity(grouped("COUNT", [300]), above!)).toBe(1);
    const below = thresholdOf({ name: "low", kpiId: "7", definition: { kpi: { below: 10 } } }, "7")!;
    expect(proximity({ aggregate: "SUM", groupBy: [], valueFloat: 20, groups: [] }, below)).toBeCloseTo(0.5);
    expect(proximity({ aggregate: "SUM", groupBy: [], valueFloat: 5, groups: [] }, below)).toBe(1);
  });
});
