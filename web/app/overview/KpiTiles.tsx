// The KPI tiles: the live `kpis` subscription (every KPI the role may read, again after each
// transaction that moves one), plus once per KPI its last hour of history and its comparison
// value, and once the alert rules that give tiles a threshold gauge. Tiles follow the user's
// saved layout; Arrange edits a draft of it (move, hide, show) until Save layout or Cancel.
"use client";
import { useEffect, useMemo, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { canQuery, type RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { KpiRules, KpiSeries, LiveKpis, type KpiRule, type LiveKpi } from "./documents";
import { HiddenTiles, TileControls } from "./ArrangeControls";
import { KpiTile, type TileHistory } from "./KpiTile";
import { foldHistory, thresholdOf } from "./kpiMath";
import { arrange, draftOf, hideTile, moveTile, showTile, type Layout } from "./layout";
import { useOverviewLayout } from "./useOverviewLayout";

const HOUR = 3_600_000;
const COMPARISONS: Record<string, { offset: number; label: string }> = {
  DAY_BEFORE: { offset: 24 * HOUR, label: "vs day before" },
  WEEK_BEFORE: { offset: 7 * 24 * HOUR, label: "vs week before" },
};

export function KpiTiles({ store, schema, token, sub }: { store: LiveStore | null; schema: RoleSchema | null; token: string; sub: string }) {
  const { document } = usePrunedDocument(LiveKpis, schema);
  const result = useLiveResult(store, document);
  const kpis = result.data?.kpis ?? null;
  const [histories, setHistories] = useState<ReadonlyMap<string, TileHistory>>(new Map());
  const [rules, setRules] = useState<readonly KpiRule[]>([]);
  const history = schema !== null && canQuery(schema, "kpiHistory");
  const saved = useOverviewLayout(token, sub, schema);
  /** The layout being arranged; null when not arranging. */
  const [draft, setDraft] = useState<Layout | null>(null);
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<string | null>(null);

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
  if (!kpis || saved.loading) return <p className="muted">Loading KPIs…</p>;
  if (kpis.length === 0) return <p className="panel-note">No KPI your role may read yet.</p>;

  const { shown, hidden } = arrange(kpis, draft ?? saved.layout);
  // Edits start from the draft naming every KPI now listed (one created meanwhile included).
  const edit = (change: (layout: Layout) => Layout) => setDraft((current) => change(draftOf(kpis, current)));
  const finish = () => {
    setDraft(null);
    setSaveError(null);
  };
  const save = async () => {
    setSaving(true);
    setSaveError(null);
    try {
      await saved.save({ tiles: shown.map((k) => k.id), hidden: hidden.map((k) => k.id) });
      setDraft(null);
    } catch (e) {
      setSaveError(e instanceof Error ? e.message : String(e));
    } finally {
      setSaving(false);
    }
  };

  return (
    <div className="kpi-section">
      <div className="toolbar">
        {saved.canSave ? (
          <button type="button" aria-pressed={draft !== null} disabled={saving} onClick={() => (draft ? finish() : setDraft(draftOf(kpis, saved.layout)))}>
            Arrange
          </button>
        ) : null}
        {draft ? (
          <>
            <button type="button" disabled={saving} onClick={() => void save()}>
              Save layout
            </button>
            <button type="button" disabled={saving} onClick={finish}>
              Cancel
            </button>
            <span className="muted small">Move tiles with ← →, hide those you do not need.</span>
          </>
        ) : hidden.length > 0 ? (
          <span className="muted small" data-testid="hidden-count">
            {hidden.length === 1 ? "1 KPI hidden" : `${hidden.length} KPIs hidden`}
          </span>
        ) : null}
        {saveError ? (
          <span className="error" role="alert">
            Layout not saved: {saveError}
          </span>
        ) : null}
        {saved.error ? <span className="muted small">Your layout could not be loaded ({saved.error}): KPIs in the server&apos;s order.</span> : null}
      </div>
      {draft ? <HiddenTiles kpis={hidden} onShow={(id) => edit((d) => showTile(d, id))} /> : null}
      {shown.length === 0 ? <p className="panel-note">Every KPI is hidden{draft ? "" : ": Arrange to show some"}.</p> : null}
      <div className="kpi-grid">
        {shown.map((kpi, i) => (
          <KpiTile
            key={kpi.id}
            kpi={kpi}
            history={history ? (histories.get(kpi.id) ?? null) : { points: [], before: null, beforeLabel: "" }}
            threshold={thresholds.get(kpi.id) ?? null}
            controls={draft ? <TileControls name={kpi.name} first={i === 0} last={i === shown.length - 1} onMove={(delta) => edit((d) => moveTile(d, kpi.id, delta))} onHide={() => edit((d) => hideTile(d, kpi.id))} /> : undefined}
          />
        ))}
      </div>
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
