// Patch application equals the full result: a seeded random history of inserts, updates and
// deletes on a table, a windowed live query over it, patches computed like the server's, and
// the client's rows compared with the recomputed result after every transaction.
import { describe, expect, it } from "vitest";
import { KeyedRows, keyOf } from "./patches";
import { result, seededRandom, serverDiff, type Row, type Window } from "./testing/serverDiff";

const STATUSES = ["pending", "paid", "picking", "cancelled"];
const asOf = (n: number) => ({ position: `0/${n.toString(16).toUpperCase()}`, commitTs: null });

function randomHistory(seed: bigint, transactions: number, window: Window) {
  const next = seededRandom(seed);
  const table = new Map<string, Row>();
  let nextId = 1;
  const insert = () => {
    const row: Row = { id: String(nextId++), status: STATUSES[next(4)] as string, total: next(40), createdAt: next(1000) };
    table.set(row.id, row);
  };
  for (let i = 0; i < 30; i++) insert();
  const client = new KeyedRows<Row>(["id"]);
  let held = result(table, window);
  let seq = 1;
  expect(client.apply({ seq, asOf: asOf(seq), reset: held })).toBe("applied");
  let patches = 0;
  for (let t = 0; t < transactions; t++) {
    for (let s = 0; s < 1 + next(3); s++) {
      const id = String(1 + next(nextId + 5));
      const row = table.get(id);
      switch (next(4)) {
        case 0:
          insert();
          break;
        case 1:
          if (row) table.set(id, { ...row, status: STATUSES[next(4)] as string });
          break;
        case 2:
          if (row) table.set(id, { ...row, total: next(40) });
          break;
        default:
          table.delete(id);
      }
    }
    const want = result(table, window);
    const patch = serverDiff(held, want);
    held = want;
    if (patch.upserts.length === 0 && patch.removedKeys.length === 0) continue; // no message, as the server
    seq += 1;
    patches += 1;
    expect(client.apply({ seq, asOf: asOf(seq), patch })).toBe("applied");
    expect(client.rows).toEqual(want);
    for (const r of want) expect(client.get(keyOf(["id"], r))).toEqual(r);
  }
  return patches;
}

describe("KeyedRows", () => {
  it("rebuilds the exact result from random patch sequences (several seeds and windows)", () => {
    let patches = 0;
    const windows: Window[] = [
      { statuses: new Set(["pending", "paid"]), offset: 2, limit: 12 },
      { statuses: new Set(STATUSES), offset: 0, limit: 25 },
      { statuses: new Set(["paid"]), offset: 0, limit: 1000 },
    ];
    for (const [n, window] of windows.entries()) {
      for (const seed of [0x2545f4914f6cdd1dn, 0x9e3779b97f4a7c15n + BigInt(n), 42n]) patches += randomHistory(seed, 400, window);
    }
    expect(patches).toBeGreaterThan(1000);
  });

  it("refuses a patch after a seq gap, and takes the next reset", () => {
    const rows = new KeyedRows<Row>(["id"]);
    const a: Row = { id: "1", status: "paid", total: 5, createdAt: 1 };
    const b: Row = { id: "2", status: "paid", total: 4, createdAt: 2 };
    rows.apply({ seq: 1, asOf: asOf(1), reset: [a] });
    expect(rows.apply({ seq: 3, asOf: asOf(3), patch: { upserts: [{ index: 1, row: b }], removedKeys: [] } })).toBe("gap");
    expect(rows.rows).toEqual([a]);
    // Even the right next seq is refused until a reset arrives: the rows are not trusted any more.
    expect(rows.apply({ seq: 2, asOf: asOf(2), patch: { upserts: [{ index: 1, row: b }], removedKeys: [] } })).toBe("gap");
    expect(rows.apply({ seq: 7, asOf: asOf(7), reset: [b, a] })).toBe("applied");
    expect(rows.rows).toEqual([b, a]);
    expect(rows.seq).toBe(7);
  });

  it("refuses an upsert index past the end of the result", () => {
    const rows = new KeyedRows<Row>(["id"]);
    rows.apply({ seq: 1, asOf: asOf(1), reset: [] });
    const a: Row = { id: "1", status: "paid", total: 5, createdAt: 1 };
    expect(rows.apply({ seq: 2, asOf: asOf(2), patch: { upserts: [{ index: 1, row: a }], removedKeys: [] } })).toBe("gap");
  });

  it("keys composite rows by every key field and records changed cells", () => {
    type Stock = { sku: string; warehouseId: string; onHand: number };
    const fresh = new KeyedRows<Stock>(["sku", "warehouseId"]);
    fresh.apply({ seq: 1, asOf: asOf(1), reset: [{ sku: "A", warehouseId: "W1", onHand: 3 }, { sku: "A", warehouseId: "W2", onHand: 4 }] });
    fresh.apply({ seq: 2, asOf: asOf(2), patch: { upserts: [{ index: 0, row: { sku: "A", warehouseId: "W2", onHand: 9 } }], removedKeys: [{ sku: "A", warehouseId: "W1" }] } }, 1000);
    expect(fresh.rows).toEqual([{ sku: "A", warehouseId: "W2", onHand: 9 }]);
    const change = fresh.changes.get(keyOf(["sku", "warehouseId"], { sku: "A", warehouseId: "W2" }));
    expect(change?.fields ? [...change.fields] : null).toEqual(["onHand"]);
    expect(fresh.changes.has(keyOf(["sku", "warehouseId"], { sku: "A", warehouseId: "W1" }))).toBe(false);
  });
});
