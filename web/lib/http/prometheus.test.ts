// The /metrics reader used by the Overview's replication health.
import { describe, expect, it } from "vitest";
import { byLabel, parseMetrics } from "./prometheus";

const TEXT = `# HELP opslive_replication_lag_bytes Source log bytes
# TYPE opslive_replication_lag_bytes gauge
opslive_replication_lag_bytes{source="shop"} 1024
opslive_replication_lag_bytes{source="crm"} 0
opslive_heartbeat_age_seconds{source="shop"} 1.5
opslive_tables{source="shop",table="a \\"b\\""} 3
opslive_up 1
`;

describe("parseMetrics", () => {
  it("reads samples with labels, skipping comments", () => {
    const samples = parseMetrics(TEXT);
    expect(samples).toHaveLength(5);
    expect(samples[4]).toEqual({ name: "opslive_up", labels: {}, value: 1 });
    expect(samples[3]?.labels).toEqual({ source: "shop", table: 'a "b"' });
    expect([...byLabel(samples, "opslive_replication_lag_bytes", "source")]).toEqual([
      ["shop", 1024],
      ["crm", 0],
    ]);
    expect(byLabel(samples, "opslive_heartbeat_age_seconds", "source").get("shop")).toBe(1.5);
  });
});
