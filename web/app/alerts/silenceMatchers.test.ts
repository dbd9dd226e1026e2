// Silence matchers as typed in the Alerts page.
import { describe, expect, it } from "vitest";
import { parseMatchers } from "./silenceMatchers";

describe("parseMatchers", () => {
  it("reads equal and not-equal matchers separated by commas", () => {
    expect(parseMatchers("team=ops, severity != info")).toEqual([
      { label: "team", value: "ops", negated: false },
      { label: "severity", value: "info", negated: true },
    ]);
  });
  it("refuses what is not a matcher", () => {
    expect(parseMatchers("")).toBeNull();
    expect(parseMatchers("team")).toBeNull();
    expect(parseMatchers("=ops")).toBeNull();
  });
});
