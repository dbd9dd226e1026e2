// The intake chart's sampling: one point per second, history before live samples, a fixed span.
import { describe, expect, it } from "vitest";
import { IntakeSeries } from "./intakeSeries";

const counts = (entries: Record<string, number>) => new Map(Object.entries(entries));

describe("IntakeSeries", () => {
  it("keeps the latest value of a second and aligns channels, 0 where a sample lacks one", () => {
    const series = new IntakeSeries(60);
    series.add(100.1, counts({ web: 1 }));
    series.add(100.9, counts({ web: 2 }));
    series.add(101.5, counts({ web: 3, app: 1 }));
    expect(series.toTimeSeries()).toEqual({
      times: [100, 101],
      series: [
        { name: "app", values: [0, 1] },
        { name: "web", values: [2, 3] },
      ],
    });
  });

  it("puts history before the live samples, ignores overlapping history, and trims to the span", () => {
    const series = new IntakeSeries(60);
    series.add(200, counts({ web: 5 }));
    series.seed([
      { at: 130, counts: counts({ web: 1 }) },
      { at: 150, counts: counts({ web: 2 }) },
      { at: 210, counts: counts({ web: 9 }) },
    ]);
    expect(series.toTimeSeries().times).toEqual([150, 200]);
    series.add(230, counts({ web: 6 }));
    expect(series.toTimeSeries().times).toEqual([200, 230]);
  });
});
