// Intake per channel: orders placed in the last minute, per channel, as a canvas time series.
// The live aggregate (a relative-time filter the server re-evaluates as time passes) is sampled
// into `IntakeSeries`; when no page filter narrows the orders and the role may read the demo's
// "orders per minute by channel" KPI, its recorded history fills the chart's past.
"use client";
import { useEffect, useMemo, useRef, useState } from "react";
import { TimeSeriesChart, type TimeSeries } from "@/components/TimeSeriesChart";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { canQuery, type RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { IntakeLastMinute, KpiDefinitions, KpiHistory, type OrdersWhere } from "./documents";
import { IntakeSeries, type IntakeSample } from "./intakeSeries";

/** The chart samples once a second; the total beside it moves at most four times a second. */
const INTAKE_PACE_MS = 250;

export function IntakeChart({ store, schema, token, where, filtered }: { store: LiveStore | null; schema: RoleSchema | null; token: string; where: OrdersWhere; filtered: boolean }) {
  const { document } = usePrunedDocument(IntakeLastMinute, schema);
  const variables = useMemo(() => ({ where: { ...where, createdAt: { gtAgo: "PT1M" } } }), [where]);
  const result = useLiveResult(store, document, variables, INTAKE_PACE_MS);
  const series = useRef(new IntakeSeries());
  const [data, setData] = useState<TimeSeries>({ times: [], series: [] });
  const latest = useRef<ReadonlyMap<string, number> | null>(null);

  // A new filter starts a new series.
  const whereKey = JSON.stringify(where);
  useEffect(() => {
    series.current = new IntakeSeries();
    latest.current = null;
    setData({ times: [], series: [] });
  }, [whereKey]);

  // The chart moves once a second (its resolution): the latest counts are sampled by a timer
  // rather than redrawn on every transaction, which kept the canvas busy under bursts.
  const groups = result.data?.ordersAggregate;
  useEffect(() => {
    if (!groups) return;
    const first = latest.current === null;
    latest.current = new Map(groups.map((g) => [g.key.channel ?? "(none)", g.count]));
    if (first) {
      series.current.add(Date.now() / 1000, latest.current);
      setData(series.current.toTimeSeries());
    }
  }, [groups]);
  useEffect(() => {
    const timer = setInterval(() => {
      if (!latest.current) return;
      series.current.add(Date.now() / 1000, latest.current);
      setData(series.current.toTimeSeries());
    }, 1_000);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    if (filtered || !schema || !canQuery(schema, "kpis") || !canQuery(schema, "kpiHistory")) return;
    let cancelled = false;
    void loadHistory(token).then((points) => {
      if (cancelled || points.length === 0) return;
      series.current.seed(points);
      setData(series.current.toTimeSeries());
    });
    return () => {
      cancelled = true;
    };
  }, [filtered, schema, token]);

  if (schema && !document) return <p className="panel-note">Your role cannot aggregate orders by channel.</p>;
  const total = result.data?.ordersAggregate.reduce((sum, g) => sum + g.count, 0) ?? null;
  return (
    <div>
      <p style={{ margin: "0 0 6px" }}>
        <span className="live-value num" data-testid="intake-total">
          {total === null ? "…" : total}
        </span>{" "}
        <span className="muted">orders in the last minute</span>
        {result.error ? <span className="error"> · {result.error}</span> : null}
      </p>
      <TimeSeriesChart data={data} label="Orders in the last minute per channel" unit="orders/min" />
    </div>
  );
}

/** The history of a KPI counting orders per channel over a one-minute window, if there is one. */
async function loadHistory(token: string): Promise<IntakeSample[]> {
  try {
    const { kpis } = await graphqlRequest(token, KpiDefinitions);
    const kpi = kpis.find((k) => {
      const window = (k.definition as { window?: { last?: string; column?: string } } | null)?.window;
      return k.table === "orders" && k.aggregate === "COUNT" && k.groupBy.length === 1 && k.groupBy[0] === "channel" && window?.last === "PT1M" && !(k.definition as { filter?: unknown }).filter;
    });
    if (!kpi) return [];
    const from = new Date(Date.now() - 15 * 60_000).toISOString();
    const { kpiHistory } = await graphqlRequest(token, KpiHistory, { id: kpi.id, from, step: "PT1M" });
    const byTime = new Map<number, Map<string, number>>();
    for (const point of kpiHistory) {
      const at = Math.floor(Date.parse(point.at) / 1000);
      const channel = (point.group as { channel?: unknown } | null)?.channel;
      if (typeof channel !== "string" || point.lastFloat === null) continue;
      const counts = byTime.get(at) ?? new Map<string, number>();
      counts.set(channel, point.lastFloat);
      byTime.set(at, counts);
    }
    return [...byTime].map(([at, counts]) => ({ at, counts }));
  } catch {
    // History is a bonus: the live samples still draw the chart.
    return [];
  }
}
