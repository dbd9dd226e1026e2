/** @vitest-environment jsdom */
// The store under a burst: hundreds of messages between two frames cause one snapshot and one
// React render per frame; a seq gap resubscribes and the result waits for its fresh reset.
import { describe, expect, it } from "vitest";
import { act, render } from "@testing-library/react";
import { useLiveRows } from "./hooks";
import { LiveStore } from "./store";
import { FakeTransport } from "./testing/fakeTransport";
import { ManualFrames } from "./testing/manualFrames";
import { parse } from "@0no-co/graphql.web";

type Row = { id: string; total: number };
const DOCUMENT = parse("subscription { ordersPatches(limit: 10) { seq asOf { position commitTs } reset { id total } patch { upserts { index row { id total } } removedKeys { id } } } }");
const asOf = { position: "0/1", commitTs: null };

function setup() {
  const frames = new ManualFrames();
  const transport = new FakeTransport();
  const store = new LiveStore(transport, { frames, lingerMs: 0 });
  let renders = 0;
  let latest: readonly Row[] = [];
  function Table() {
    const snapshot = useLiveRows<Row>(store, DOCUMENT, "ordersPatches", ["id"]);
    renders += 1;
    latest = snapshot.rows;
    return <span>{snapshot.rows.length}</span>;
  }
  render(<Table />);
  return { frames, transport, store, renders: () => renders, rows: () => latest };
}

describe("LiveStore", () => {
  it("renders at most once per animation frame under a burst of messages", () => {
    const { frames, transport, renders, rows } = setup();
    expect(transport.active).toHaveLength(1);
    const before = renders();
    act(() => {
      transport.push({ data: { ordersPatches: { seq: 1, asOf, reset: [{ id: "1", total: 0 }] } } });
      for (let seq = 2; seq <= 500; seq++) {
        transport.push({ data: { ordersPatches: { seq, asOf, patch: { upserts: [{ index: 0, row: { id: "1", total: seq } }], removedKeys: [] } } } });
      }
    });
    expect(renders()).toBe(before); // nothing drawn between frames
    act(() => frames.tick());
    expect(renders()).toBe(before + 1);
    expect(rows()).toEqual([{ id: "1", total: 500 }]);
    act(() => frames.tick()); // a frame with nothing new draws nothing
    expect(renders()).toBe(before + 1);
    for (let burst = 0; burst < 5; burst++) {
      act(() => {
        for (let i = 0; i < 100; i++) {
          const seq = 501 + burst * 100 + i;
          transport.push({ data: { ordersPatches: { seq, asOf, patch: { upserts: [{ index: 0, row: { id: "1", total: seq } }], removedKeys: [] } } } });
        }
        frames.tick();
      });
    }
    expect(renders()).toBe(before + 6);
    expect(rows()).toEqual([{ id: "1", total: 1000 }]);
  });

  it("resubscribes on a seq gap and shows the fresh reset, never the stale rows patched", () => {
    const { frames, transport, rows } = setup();
    act(() => {
      transport.push({ data: { ordersPatches: { seq: 1, asOf, reset: [{ id: "1", total: 1 }, { id: "2", total: 2 }] } } });
      frames.tick();
    });
    const first = transport.active[0];
    act(() => {
      transport.push({ data: { ordersPatches: { seq: 3, asOf, patch: { upserts: [{ index: 0, row: { id: "9", total: 9 } }], removedKeys: [] } } } });
      frames.tick();
    });
    expect(first?.active).toBe(false);
    expect(transport.active).toHaveLength(1);
    expect(rows()).toEqual([{ id: "1", total: 1 }, { id: "2", total: 2 }]);
    act(() => {
      transport.push({ data: { ordersPatches: { seq: 1, asOf, reset: [{ id: "2", total: 5 }] } } });
      frames.tick();
    });
    expect(rows()).toEqual([{ id: "2", total: 5 }]);
  });

  it("after a disconnect takes only a reset: a patch that arrives first is refused", () => {
    const { frames, transport, rows } = setup();
    act(() => {
      transport.push({ data: { ordersPatches: { seq: 1, asOf, reset: [{ id: "1", total: 1 }] } } });
      frames.tick();
    });
    act(() => {
      transport.disconnect();
      transport.push({ data: { ordersPatches: { seq: 2, asOf, patch: { upserts: [{ index: 1, row: { id: "2", total: 2 } }], removedKeys: [] } } } });
      frames.tick();
    });
    expect(rows()).toEqual([{ id: "1", total: 1 }]);
    act(() => {
      transport.push({ data: { ordersPatches: { seq: 4, asOf, reset: [{ id: "3", total: 3 }] } } });
      frames.tick();
    });
    expect(rows()).toEqual([{ id: "3", total: 3 }]);
  });
});
