// Numbers behind a KPI tile, kept pure for tests: one figure per KPI (a grouped count or sum
// adds its groups; other grouped aggregates show their largest group), history points folded
// into one series the same way, the change against an earlier value, and how close the value is
// to the threshold of an alert rule on it.

export interface KpiLike {
  readonly aggregate: string | null;
  readonly groupBy: readonly string[];
  readonly valueFloat: number | null;
  readonly groups: readonly { readonly key: unknown; readonly valueFloat: number | null }[];
}

const ADDITIVE = new Set(["COUNT", "SUM"]);

/** The tile's headline figure; null when there is none (not ready, no rows). */
export function headline(kpi: KpiLike): number | null {
  if (kpi.groupBy.length === 0) return kpi.valueFloat;
  const values = kpi.groups.map((g) => g.valueFloat).filter((v): v is number => v !== null);
  const additive = kpi.aggregate !== null && ADDITIVE.has(kpi.aggregate);
  if (values.length === 0) return additive ? 0 : null;
  return additive ? values.reduce((a, b) => a + b, 0) : Math.max(...values);
}

/** History points (per minute and group) as one series of [seconds, value], folded like `headline`. */
export function foldHistory(aggregate: string | null, points: readonly { readonly at: string; readonly lastFloat: number | null }[]): [number, number][] {
  const byTime = new Map<number, number[]>();
  for (const point of points) {
    if (point.lastFloat === null) continue;
    const at = Math.floor(Date.parse(point.at) / 1000);
    const list = byTime.get(at) ?? [];
    list.push(point.lastFloat);
    byTime.set(at, list);
  }
  return [...byTime]
    .sort((a, b) => a[0] - b[0])
    .map(([at, values]) => [at, aggregate !== null && ADDITIVE.has(aggregate) ? values.reduce((a, b) => a + b, 0) : Math.max(...values)]);
}

/** The relative change from `before` to `now` (0.25 = +25 %); null when it cannot be said. */
export function change(now: number | null, before: number | null): number | null {
  if (now === null || before === null || before === 0) return null;
  return (now - before) / Math.abs(before);
}

export interface Threshold {
  readonly ruleName: string;
  readonly above?: number;
  readonly below?: number;
}

/** The threshold in a rule's stored definition, when it is a KPI rule on this KPI with one. */
export function thresholdOf(rule: { readonly name: string; readonly kpiId: string | null; readonly definition: unknown }, kpiId: string): Threshold | null {
  if (rule.kpiId !== kpiId) return null;
  const condition = (rule.definition as { kpi?: { above?: unknown; below?: unknown; outside?: { low?: unknown; high?: unknown } } } | null)?.kpi;
  if (!condition) return null;
  const above = typeof condition.above === "number" ? condition.above : typeof condition.outside?.high === "number" ? condition.outside.high : undefined;
  const below = typeof condition.below === "number" ? condition.below : typeof condition.outside?.low === "number" ? condition.outside.low : undefined;
  if (above === undefined && below === undefined) return null;
  return { ruleName: rule.name, ...(above !== undefined ? { above } : {}), ...(below !== undefined ? { below } : {}) };
}

/**
 * How far the value has gone towards the threshold, 0..1 (1 = at or past it). For an upper
 * threshold, value / above; for a lower one, below / value. The value compared is the one the
 * rule fires on: for grouped KPIs each group fires on its own, so the worst group counts.
 */
export function proximity(kpi: KpiLike, threshold: Threshold): number | null {
  const values = kpi.groupBy.length === 0 ? [kpi.valueFloat] : kpi.groups.map((g) => g.valueFloat);
  const present = values.filter((v): v is number => v !== null);
  if (present.length === 0) return null;
  let worst = 0;
  if (threshold.above !== undefined && threshold.above > 0) worst = Math.max(worst, Math.max(...present) / threshold.above);
  if (threshold.below !== undefined) {
    const low = Math.min(...present);
    worst = Math.max(worst, low <= threshold.below ? 1 : low > 0 ? threshold.below / low : 0);
  }
  return Math.min(1, Math.max(0, worst));
}
