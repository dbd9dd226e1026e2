// The incremental live-result form (`…Patches`) applied to a keyed collection, exactly as the
// server's reference client (`PatchClient` in tests/live_queries.rs) does: a `reset` replaces
// everything; a `patch` drops the rows whose keys are in `removedKeys` or among the upserts,
// then inserts each upsert at its index, lowest first. `seq` grows by one per update: a gap (or
// an index past the end) means an update was missed, and the caller must subscribe again for a
// fresh reset rather than patch rows it cannot trust. Pure data, no I/O, so it is unit-tested.

/** A row as the server sends it: a JSON object of scalars (strings, numbers, booleans, null) or JSON. */
export type LiveRow = { readonly [field: string]: unknown };

export interface AsOf {
  readonly position: string;
  readonly commitTs: string | null;
}

/** One message of a `…Patches` subscription (the shape of the generated `…LiveUpdate` types). */
export interface PatchUpdate<Row extends LiveRow, Key extends LiveRow> {
  readonly seq: number;
  readonly asOf: AsOf;
  readonly reset?: readonly Row[] | null;
  readonly patch?: {
    readonly upserts: readonly { readonly index: number; readonly row: Row }[];
    readonly removedKeys: readonly Key[];
  } | null;
}

/** Which cells of a row changed in the latest update that touched it, and when (for flashes). */
export interface RowChange {
  /** Fields whose value differs from the row held before; `null` when the row is new. */
  readonly fields: ReadonlySet<string> | null;
  /** A counter that grows with every update, so a component can restart its flash. */
  readonly stamp: number;
  readonly at: number;
}

export type ApplyOutcome = "applied" | "gap";

/** The string identity of a row or key, from the table's key fields (`id`, or `sku` + `warehouseId`). */
export function keyOf(keyFields: readonly string[], row: LiveRow): string {
  if (keyFields.length === 1) return String(row[keyFields[0] as string]);
  return keyFields.map((field) => String(row[field])).join("\u0000");
}

/**
 * A live result held as an ordered array plus an index by key. Mutated in place by `apply`;
 * readers take `rows` (a fresh array after every applied update, so React can compare by identity).
 */
export class KeyedRows<Row extends LiveRow> {
  rows: readonly Row[] = [];
  seq: number | null = null;
  asOf: AsOf | null = null;
  resets = 0;
  /** True until the first reset, and again after a reconnect or a gap: patches are then refused. */
  awaitingReset = true;
  readonly changes = new Map<string, RowChange>();
  private byKey = new Map<string, Row>();
  /** `keys[i]` is the key of `rows[i]`: a patch finds the rows it replaces without re-deriving every key. */
  private keys: string[] = [];
  private stamp = 0;

  constructor(readonly keyFields: readonly string[]) {}

  get(key: string): Row | undefined {
    return this.byKey.get(key);
  }

  /** Applies one update; `"gap"` means this result can no longer be patched: subscribe again. */
  apply(update: PatchUpdate<Row, LiveRow>, now: number = Date.now()): ApplyOutcome {
    if (update.reset) {
      this.replace(update.reset, now);
    } else if (update.patch) {
      if (this.awaitingReset || this.seq === null || update.seq !== this.seq + 1) return this.lose();
      if (!this.patch(update.patch.upserts, update.patch.removedKeys, now)) return this.lose();
    } else {
      return this.lose();
    }
    this.seq = update.seq;
    this.asOf = update.asOf;
    return "applied";
  }

  /** Marks the rows as no longer patchable (a reconnect): only a reset is taken next. */
  invalidate(): void {
    this.awaitingReset = true;
  }

  private lose(): ApplyOutcome {
    this.awaitingReset = true;
    return "gap";
  }

  private replace(rows: readonly Row[], now: number): void {
    const previous = this.byKey;
    this.byKey = new Map();
    this.stamp += 1;
    const changes = new Map<string, RowChange>();
    const keys: string[] = [];
    for (const row of rows) {
      const key = keyOf(this.keyFields, row);
      keys.push(key);
      this.byKey.set(key, row);
      // After the first reset, a reset (reconnect, slow client) flashes what really changed.
      if (this.resets > 0) {
        const before = previous.get(key);
        const fields = before ? changedFields(before, row) : null;
        if (!before || (fields && fields.size > 0)) changes.set(key, { fields, stamp: this.stamp, at: now });
      }
    }
    this.rows = rows.slice();
    this.keys = keys;
    this.changes.clear();
    for (const [key, change] of changes) this.changes.set(key, change);
    this.resets += 1;
    this.awaitingReset = false;
  }

  private patch(
    upserts: readonly { readonly index: number; readonly row: Row }[],
    removedKeys: readonly LiveRow[],
    now: number,
  ): boolean {
    const gone = new Set<string>();
    const removedIds = removedKeys.map((key) => keyOf(this.keyFields, key));
    for (const id of removedIds) gone.add(id);
    const upsertKeys = upserts.map((upsert) => keyOf(this.keyFields, upsert.row));
    for (const key of upsertKeys) gone.add(key);
    let kept = this.rows;
    let keptKeys = this.keys;
    if (gone.size > 0) {
      const rows: Row[] = [];
      const keys: string[] = [];
      for (let i = 0; i < keptKeys.length; i++) {
        const key = keptKeys[i] as string;
        if (gone.has(key)) continue;
        rows.push(kept[i] as Row);
        keys.push(key);
      }
      kept = rows;
      keptKeys = keys;
    }
    const order = upserts.map((_, i) => i);
    if (!isAscending(upserts)) order.sort((a, b) => (upserts[a] as { index: number }).index - (upserts[b] as { index: number }).index);
    // Inserting each upsert at its index, lowest first, is a merge of `kept` with the upserts.
    const total = kept.length + upserts.length;
    const next: Row[] = new Array<Row>(total);
    const nextKeys: string[] = new Array<string>(total);
    let from = 0;
    let at = 0;
    for (const u of order) {
      const upsert = upserts[u] as { readonly index: number; readonly row: Row };
      if (upsert.index > kept.length - from + at || upsert.index < at) return false;
      while (at < upsert.index) {
        nextKeys[at] = keptKeys[from] as string;
        next[at++] = kept[from++] as Row;
      }
      nextKeys[at] = upsertKeys[u] as string;
      next[at++] = upsert.row;
    }
    while (from < kept.length) {
      nextKeys[at] = keptKeys[from] as string;
      next[at++] = kept[from++] as Row;
    }

    this.stamp += 1;
    for (const id of removedIds) {
      this.byKey.delete(id);
      this.changes.delete(id);
    }
    upserts.forEach(({ row }, u) => {
      const key = upsertKeys[u] as string;
      const before = this.byKey.get(key);
      this.byKey.set(key, row);
      this.changes.set(key, { fields: before ? changedFields(before, row) : null, stamp: this.stamp, at: now });
    });
    this.rows = next;
    this.keys = nextKeys;
    return true;
  }
}

function isAscending(upserts: readonly { readonly index: number }[]): boolean {
  for (let i = 1; i < upserts.length; i++) if ((upserts[i] as { index: number }).index < (upserts[i - 1] as { index: number }).index) return false;
  return true;
}

function changedFields(before: LiveRow, after: LiveRow): Set<string> {
  const fields = new Set<string>();
  for (const field of Object.keys(after)) {
    const a = before[field];
    const b = after[field];
    if (a !== b && JSON.stringify(a) !== JSON.stringify(b)) fields.add(field);
  }
  return fields;
}
