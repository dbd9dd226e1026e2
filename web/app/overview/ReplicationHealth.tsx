// Replication health per source — lag (bytes and seconds), WAL the slot retains, heartbeat age,
// changes per second — from the built-in KPIs (`kpis(builtin: true)`), which the server samples
// once a second and pushes like any live result: no polling, and the same values alert rules see.
"use client";
import { useMemo } from "react";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import type { RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { SourceHealthKpis, type SourceHealthKpi } from "./documents";
import { healthBySource } from "./sourceHealth";
import { bytes } from "@/lib/format/bytes";

export function ReplicationHealth({ store, schema }: { store: LiveStore | null; schema: RoleSchema | null }) {
  const { document } = usePrunedDocument(SourceHealthKpis, schema);
  const result = useLiveResult(store, document);
  const kpis: readonly SourceHealthKpi[] | null = result.data?.kpis ?? null;
  const sources = useMemo(() => (kpis ? healthBySource(kpis) : null), [kpis]);
  if (schema && !document) return <p className="panel-note">Replication health is not available to your role.</p>;
  if (result.error && !sources) return <p className="error">Replication health unavailable: {result.error}</p>;
  if (!sources) return <p className="muted">Loading…</p>;
  return (
    <table className="grid-table" aria-label="Replication health">
      <thead>
        <tr>
          <th>Source</th>
          <th>Lag</th>
          <th>Retained WAL</th>
          <th>Heartbeat age</th>
          <th>Changes/s</th>
        </tr>
      </thead>
      <tbody className="live-value">
        {sources.map((s) => (
          <tr key={s.source}>
            <td>{s.source}</td>
            <td className="num">
              {bytes(s.LAG_BYTES)} · {seconds(s.LAG_SECONDS)}
            </td>
            <td className="num">{bytes(s.RETAINED_WAL_BYTES)}</td>
            <td className="num">{seconds(s.HEARTBEAT_AGE_SECONDS)}</td>
            <td className="num">{s.CHANGES_PER_SECOND === null ? "—" : s.CHANGES_PER_SECOND.toFixed(1)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function seconds(s: number | null): string {
  return s === null ? "—" : `${s.toFixed(1)} s`;
}
