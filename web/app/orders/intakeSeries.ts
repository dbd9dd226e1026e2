// The intake chart's data: orders in the last minute per channel, sampled as the live aggregate
// changes (at most one point per second per series, the latest value winning), seeded with the
// KPI history when a matching KPI exists, trimmed to a fixed span. Pure, so it is unit-tested.
import type { TimeSeries } from "@/components/TimeSeriesChart";

export interface IntakeSample {
  /** Seconds since the epoch. */
  readonly at: number;
  readonly counts: ReadonlyMap<string, number>;
}

export class IntakeSeries {
  private samples: IntakeSample[] = [];

  constructor(private readonly spanSeconds: number = 15 * 60) {}

  /** Adds the counts at `at` (seconds); a sample in the same second as the last one replaces it. */
  add(at: number, counts: ReadonlyMap<string, number>): void {
    const second = Math.floor(at);
    const last = this.samples[this.samples.length - 1];
    if (last && last.at > second) return;
    if (last && last.at === second) this.samples[this.samples.length - 1] = { at: second, counts };
    else this.samples.push({ at: second, counts });
    this.trim(second);
  }

  /** Earlier points (from KPI history), merged in before the live samples; later ones are ignored. */
  seed(points: readonly IntakeSample[]): void {
    const first = this.samples[0]?.at ?? Number.POSITIVE_INFINITY;
    const earlier = points.filter((p) => p.at < first).sort((a, b) => a.at - b.at);
    this.samples = [...earlier, ...this.samples];
    const last = this.samples[this.samples.length - 1];
    if (last) this.trim(last.at);
  }

  get size(): number {
    return this.samples.length;
  }

  /** Aligned series for the chart: every channel seen, in name order; 0 where a sample lacks it. */
  toTimeSeries(): TimeSeries {
    const names = new Set<string>();
    for (const sample of this.samples) for (const name of sample.counts.keys()) names.add(name);
    const sorted = [...names].sort();
    return {
      times: this.samples.map((s) => s.at),
      series: sorted.map((name) => ({ name, values: this.samples.map((s) => s.counts.get(name) ?? 0) })),
    };
  }

  private trim(now: number): void {
    const from = now - this.spanSeconds;
    let drop = 0;
    while (drop < this.samples.length && (this.samples[drop] as IntakeSample).at < from) drop += 1;
    if (drop > 0) this.samples = this.samples.slice(drop);
  }
}
