// One KPI tile: the value as it stands after the latest transaction, a sparkline of the last hour
// (recorded history, then the live values), the change against the comparison the KPI defines
// (or an hour ago), and a gauge of how close it is to the threshold of an alert rule on it.
// While the user arranges the Overview, the tile carries the controls to move or hide it.
"use client";
import type { ReactNode } from "react";
import { Sparkline } from "@/components/Sparkline";
import type { LiveKpi } from "./documents";
import { change, headline, proximity, type Threshold } from "./kpiMath";

export interface TileHistory {
  readonly points: readonly (readonly [number, number])[];
  /** The value to compare with, and what it is ("vs day before"). */
  readonly before: number | null;
  readonly beforeLabel: string;
}

export function KpiTile({ kpi, history, threshold, controls }: { kpi: LiveKpi; history: TileHistory | null; threshold: Threshold | null; controls?: ReactNode }) {
  const value = headline(kpi);
  const now = Math.floor(Date.now() / 1000);
  const points = history ? (value === null ? history.points : [...history.points.filter((p) => p[0] < now), [now, value] as const]) : [];
  const delta = history ? change(value, history.before) : null;
  const near = threshold ? proximity(kpi, threshold) : null;
  const level = near === null ? "" : near >= 1 ? "crit" : near >= 0.8 ? "warn" : "ok";
  return (
    <article className={`panel kpi-tile${controls ? " arranging" : ""}`} data-kpi={kpi.name} data-kpi-id={kpi.id} aria-label={kpi.name}>
      {controls}
      <h2 title={kpi.name}>{kpi.name}</h2>
      {kpi.ready ? (
        <p className="kpi-value live-value num" data-testid="kpi-value">
          {value === null ? "—" : formatNumber(value)}
          {kpi.unit ? <span className="muted kpi-unit"> {kpi.unit}</span> : null}
        </p>
      ) : (
        <p className="muted">not ready{kpi.notReadyReason ? `: ${kpi.notReadyReason}` : ""}</p>
      )}
      {kpi.groupBy.length > 0 && kpi.groups.length > 0 ? (
        <p className="kpi-groups live-value muted">
          {kpi.groups
            .slice()
            .sort((a, b) => (b.valueFloat ?? 0) - (a.valueFloat ?? 0))
            .slice(0, 4)
            .map((g) => `${Object.values(g.key as Record<string, unknown>).join("/")} ${g.value ?? "—"}`)
            .join(" · ")}
        </p>
      ) : null}
      <Sparkline points={points} label={`${kpi.name}, last hour`} />
      <p className="kpi-foot">
        {delta === null ? (
          <span className="muted">{history ? `no earlier value ${history.beforeLabel}` : "loading history…"}</span>
        ) : (
          <span className={`live-value ${delta >= 0 ? "up" : "down"}`}>
            {delta >= 0 ? "▲" : "▼"} {Math.abs(delta * 100).toFixed(1)} % <span className="muted">{history?.beforeLabel}</span>
          </span>
        )}
      </p>
      {threshold && near !== null ? (
        <div className={`gauge ${level}`} title={`alert “${threshold.ruleName}”`} aria-label={`${Math.round(near * 100)} % of the alert threshold`}>
          <div className="gauge-fill live-value" style={{ width: `${near * 100}%` }} />
          <span className="muted">
            {Math.round(near * 100)} % of {threshold.above !== undefined ? `> ${threshold.above}` : `< ${threshold.below}`}
          </span>
        </div>
      ) : null}
    </article>
  );
}

export function formatNumber(value: number): string {
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return value.toLocaleString("en", { maximumFractionDigits: 2 });
}
