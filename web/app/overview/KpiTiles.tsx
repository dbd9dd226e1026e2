// The KPI tiles: the live `kpis` subscription (every KPI the role may read, again after each
// transaction that moves one), plus once per KPI its last hour of history and its comparison
// value, and once the alert rules that give tiles a threshold gauge.
"use client";
import { useEffect, useMemo, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { canQuery, type RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { KpiRules, KpiSeries, LiveKpis, type KpiRule, type LiveKpi } from "./documents";
import { KpiTile, type TileHistory } from "./KpiTile";
import { foldHistory, thresholdOf } from "./kpiMath";

const HOUR = 3_600_000;
const COMPARISONS: Record<string, { offset: number; label: string }> = {
  DAY_BEFORE: { offset: 24 * HOUR, label: "vs day before" },
  WEEK_BEFORE: { offset: 7 * 24 * HOUR, label: "vs week before" },
};

export function KpiTiles({ store, schema, token }: { store: LiveStore | null; schema: RoleSchema | null; token: string }) {
  const { document } = usePrunedDocument(LiveKpis, schema);
  const result = useLiveResult(store, document);
  const kpis = result.data?.kpis ?? null;
  const [histories, setHistories] = useState<ReadonlyMap<string, TileHistory>>(new Map());
  const [rules, setRules] = useState<readonly KpiRule[]>([]);
  const history = schema !== null && canQuery(schema, "kpiHistory");

  const idsKey = (kpis ?? []).map((k) => k.id).join(",");
  useEffect(() => {
    if (!history || !kpis) return;
    let cancelled = false;
    for (const kpi of kpis) {
      if (histories.has(kpi.id)) continue;
      void loadHistory(token, kpi).then((loaded) => {
        if (!cancelled) setHistories((current) => new Map(current).set(kpi.id, loaded));
      });
    }
    return () => {
      cancelled = true;
    };
    // Loaded once per KPI id; live values extend the sparkline from there.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [idsKey, history, token]);

  useEffect(() => {
    if (!schema || !canQuery(schema, "alertRules")) return;
    graphqlRequest(token, KpiRules)
      .then((answer) => setRules(answer.alertRules))
      .catch(() => setRules([]));
  }, [schema, token]);

  const thresholds = useMemo(() => {
    const found = new Map<string, ReturnType<typeof thresholdOf>>();
    for (const kpi of kpis ?? []) found.set(kpi.id, rules.map((r) => thresholdOf(r, kpi.id)).find((t) => t !== null) ?? null);
    return found;
  }, [kpis, rules]);

  if (schema && !document) return <p className="panel-note">Your role has no KPIs.</p>;
  if (result.error && !kpis) return <p className="error">{result.error}</p>;
  if (!kpis) return <p className="muted">Loading KPIs…</p>;
  if (kpis.length === 0) return <p className="panel-note">No KPI your role may read yet.</p>;
  return (
    <div className="kpi-grid">
      {kpis.map((kpi) => (
        <KpiTile key={kpi.id} kpi={kpi} history={history ? (histories.get(kpi.id) ?? null) : { points: [], before: null, beforeLabel: "" }} threshold={thresholds.get(kpi.id) ?? null} />
      ))}
    </div>
  );
}

async function loadHistory(token: string, kpi: LiveKpi): Promise<TileHistory> {
  const now = Date.now();
  try {
    const { kpiHistory } = await graphqlRequest(token, KpiSeries, { id: kpi.id, from: new Date(now - HOUR).toISOString(), to: new Date(now).toISOString() });
    const points = foldHistory(kpi.aggregate, kpiHistory);
    const comparison = COMPARISONS[(kpi.definition as { comparison?: string } | null)?.comparison ?? ""];
    if (comparison) {
      const at = now - comparison.offset;
      const earlier = await graphqlRequest(token, KpiSeries, { id: kpi.id, from: new Date(at - 5 * 60_000).toISOString(), to: new Date(at).toISOString() });
      const folded = foldHistory(kpi.aggregate, earlier.kpiHistory);
      return { points, before: folded[folded.length - 1]?.[1] ?? null, beforeLabel: comparison.label };
    }
    const first = points[0];
    const minutes = first ? Math.round((now / 1000 - first[0]) / 60) : 0;
    return { points, before: first && minutes >= 1 ? first[1] : null, beforeLabel: first ? `vs ${minutes} min ago` : "(no history yet)" };
  } catch {
    return { points: [], before: null, beforeLabel: "(history unavailable)" };
  }
}
