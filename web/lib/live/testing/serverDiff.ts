// Test support: a live result computed the way the server computes it (src/live/window.rs):
// rows filtered, sorted with ties broken by key, windowed by offset/limit; and the patch between
// two results by the same merge walk as `diff` there (a row whose sort position changed is an
// upsert at its new index; only keys no longer present are removed).
import type { LiveRow } from "../patches";

export interface Row extends LiveRow {
  readonly id: string;
  readonly status: string;
  readonly total: number;
  readonly createdAt: number;
}

export interface Window {
  readonly statuses: ReadonlySet<string>;
  readonly offset: number;
  readonly limit: number;
}

/** `orderBy: [{ total: DESC }, { createdAt: ASC }]`, ties by primary key. */
export function compareRows(a: Row, b: Row): number {
  if (a.total !== b.total) return b.total - a.total;
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return Number(a.id) - Number(b.id);
}

export function result(table: ReadonlyMap<string, Row>, window: Window): Row[] {
  return [...table.values()]
    .filter((row) => window.statuses.has(row.status))
    .sort(compareRows)
    .slice(window.offset, window.offset + window.limit);
}

export interface Patch {
  readonly upserts: { index: number; row: Row }[];
  readonly removedKeys: { id: string }[];
}

export function serverDiff(old: readonly Row[], next: readonly Row[]): Patch {
  const upserts: { index: number; row: Row }[] = [];
  const gone: Row[] = [];
  let i = 0;
  let j = 0;
  while (i < old.length || j < next.length) {
    const a = old[i];
    const b = next[j];
    const step = a && b ? Math.sign(compareRows(a, b)) : a ? -1 : 1;
    if (step === 0 && a && b) {
      if (a !== b && JSON.stringify(a) !== JSON.stringify(b)) upserts.push({ index: j, row: b });
      i += 1;
      j += 1;
    } else if (step < 0 && a) {
      gone.push(a);
      i += 1;
    } else if (b) {
      upserts.push({ index: j, row: b });
      j += 1;
    }
  }
  const moved = new Set(upserts.map((u) => u.row.id));
  return { upserts, removedKeys: gone.filter((row) => !moved.has(row.id)).map((row) => ({ id: row.id })) };
}

/** xorshift64, as the server's own randomised test uses: the same seed gives the same history. */
export function seededRandom(seed: bigint): (n: number) => number {
  let state = seed & 0xffff_ffff_ffff_ffffn;
  return (n: number) => {
    state ^= (state << 13n) & 0xffff_ffff_ffff_ffffn;
    state ^= state >> 7n;
    state ^= (state << 17n) & 0xffff_ffff_ffff_ffffn;
    return Number(state % BigInt(n));
  };
}
