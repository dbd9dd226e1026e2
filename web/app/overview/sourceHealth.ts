// The built-in KPIs folded into one row per source: each measure's value, or null while the
// server has none (no heartbeat back yet, the slot not polled yet).
export const MEASURES = ["LAG_BYTES", "LAG_SECONDS", "RETAINED_WAL_BYTES", "HEARTBEAT_AGE_SECONDS", "CHANGES_PER_SECOND"] as const;
export type Measure = (typeof MEASURES)[number];
export type SourceRow = { readonly source: string } & { readonly [M in Measure]: number | null };

interface HealthKpi {
  readonly valueFloat: number | null;
  readonly ready: boolean;
  readonly source: { readonly source: string; readonly measure: string } | null;
}

export function healthBySource(kpis: readonly HealthKpi[]): SourceRow[] {
  const rows = new Map<string, Record<string, number | null>>();
  for (const k of kpis) {
    if (!k.source || !(MEASURES as readonly string[]).includes(k.source.measure)) continue;
    const row = rows.get(k.source.source) ?? Object.fromEntries(MEASURES.map((m) => [m, null]));
    row[k.source.measure] = k.ready ? k.valueFloat : null;
    rows.set(k.source.source, row);
  }
  return [...rows.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([source, row]) => ({ source, ...row }) as SourceRow);
}
