// Support page arithmetic: the queue × priority matrix and wait formatting.
import { describe, expect, it } from "vitest";
import { matrix, waitSince } from "./supportMath";

describe("support arithmetic", () => {
  it("builds a matrix with columns in the given order, unknown columns after, 0 where empty", () => {
    const m = matrix(
      [
        { row: "billing", column: "low", count: 2 },
        { row: "billing", column: "urgent", count: 1 },
        { row: "shipping", column: "weird", count: 4 },
        { row: "shipping", column: "low", count: 3 },
      ],
      ["urgent", "high", "normal", "low"],
    );
    expect(m.rows).toEqual(["billing", "shipping"]);
    expect(m.columns).toEqual(["urgent", "low", "weird"]);
    expect(m.get("shipping", "urgent")).toBe(0);
    expect(m.rowTotal("shipping")).toBe(7);
  });

  it("formats waits in seconds, minutes and hours", () => {
    const now = Date.parse("2026-12-04T12:00:00Z");
    expect(waitSince("2026-12-04T11:59:50Z", now)).toBe("10 s");
    expect(waitSince("2026-12-04T11:56:00Z", now)).toBe("4 min");
    expect(waitSince("2026-12-04T10:55:00Z", now)).toBe("1 h 05 min");
    expect(waitSince(null, now)).toBe("—");
  });
});
