// The worker's relay batches: a burst of messages reaches the page as one batch per frame (one
// main-thread task, not one per message), an idle connection's first message goes at once, and
// what happened on the socket keeps its order inside a batch. The page's side drops what was
// already sent for a subscription it ended.
import { describe, expect, it } from "vitest";
import type { ConnectionSnapshot, LiveConnection } from "./client";
import { immediateScheduler } from "./frames";
import { FrameBatchedValue } from "./observable";
import { Relay, type RelayBatch, type RelayEvent } from "./relay";
import { FakeTransport } from "./testing/fakeTransport";
import { ManualFrames } from "./testing/manualFrames";
import { WorkerConnection, type RelayPort } from "./workerConnection";

class FakeConnection extends FakeTransport implements LiveConnection {
  readonly state = new FrameBatchedValue<ConnectionSnapshot>({ state: "idle", since: 0, attempts: 0 }, immediateScheduler);
  readonly connection = this.state;
  lastMessageAt: number | null = null;
  disposed = false;
  setBrowserOnline(): void {}
  dispose(): void {
    this.disposed = true;
  }
}

/** A clock and timers the test advances by hand. */
class Clock {
  now = 1_000;
  private timers: { at: number; callback: () => void }[] = [];
  setTimer = (callback: () => void, ms: number) => this.timers.push({ at: this.now + ms, callback });
  /** Moves time on by `ms`, running the timers that fall due, in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.now = next.at;
      next.callback();
    }
    this.now = until;
  }
}

function setup() {
  const clock = new Clock();
  const connection = new FakeConnection();
  const batches: RelayBatch[] = [];
  const relay = new Relay((batch) => batches.push(structuredClone(batch)), () => connection, {
    batchMs: 16,
    now: () => clock.now,
    setTimer: clock.setTimer,
  });
  relay.receive({ type: "open", options: { url: "ws://x/graphql", token: "t", expiresAt: 0 } });
  return { clock, connection, batches, relay };
}

const patch = (seq: number) => ({ data: { ordersPatches: { seq } } });
const kinds = (events: readonly RelayEvent[]) => events.map((e) => (e.kind === "next" ? `next ${(e.result.data as { ordersPatches: { seq: number } }).ordersPatches.seq}` : e.kind));

describe("Relay", () => {
  it("hands a burst to the page as one batch per frame, and an idle connection's first message at once", () => {
    const { clock, connection, batches, relay } = setup();
    relay.receive({ type: "subscribe", id: 1, request: { query: "subscription { ordersPatches { seq } }" } });
    expect(connection.active).toHaveLength(1);

    connection.push(patch(1));
    clock.advance(0); // idle: the first message goes on the next macrotask, not a frame later
    expect(batches.map((b) => kinds(b.events))).toEqual([["next 1"]]);

    // 300 messages within 10 ms: they wait for the frame after the last batch, and go together.
    for (let seq = 2; seq <= 301; seq++) connection.push(patch(seq));
    clock.advance(10);
    expect(batches).toHaveLength(1);
    clock.advance(6);
    expect(batches).toHaveLength(2);
    expect(kinds(batches[1]!.events)).toEqual(Array.from({ length: 300 }, (_, i) => `next ${i + 2}`));

    // A steady 1,000 messages a second for a second: about one batch per 16 ms frame.
    for (let ms = 0; ms < 1_000; ms++) {
      connection.push(patch(302 + ms));
      clock.advance(1);
    }
    clock.advance(16);
    const steady = batches.slice(2);
    expect(steady.length).toBeGreaterThanOrEqual(60);
    expect(steady.length).toBeLessThanOrEqual(64);
    expect(steady.flatMap((b) => b.events)).toHaveLength(1_000);
  });

  it("keeps the socket's order in a batch: a disconnect stays between the patch before it and the reset after it", () => {
    const { clock, connection, batches, relay } = setup();
    relay.receive({ type: "subscribe", id: 1, request: { query: "subscription { ordersPatches { seq } }" } });
    connection.push(patch(1));
    connection.disconnect();
    connection.state.set({ state: "reconnecting", since: 5, attempts: 1 });
    connection.push(patch(1));
    connection.lastMessageAt = 1_234;
    clock.advance(0);
    expect(batches).toHaveLength(1);
    expect(kinds(batches[0]!.events)).toEqual(["next 1", "disconnect", "connection", "next 1"]);
    expect(batches[0]!.lastMessageAt).toBe(1_234);
  });

  it("forwards nothing for a subscription the page ended, and the page drops what was already on its way", () => {
    const { clock, connection, batches, relay } = setup();
    const frames = new ManualFrames();
    const listeners: ((event: MessageEvent<RelayBatch>) => void)[] = [];
    const port: RelayPort = {
      postMessage: (message) => relay.receive(structuredClone(message)),
      addEventListener: (type: "message" | "error", listener: (event: MessageEvent<RelayBatch>) => void) => {
        if (type === "message") listeners.push(listener);
      },
    };
    const deliver = () => {
      for (const batch of batches.splice(0)) for (const listener of listeners) listener({ data: batch } as MessageEvent<RelayBatch>);
    };
    const page = new WorkerConnection(port, { url: "ws://x/graphql", token: "t", expiresAt: 0, frames, onAuthLost: () => {} });
    const seen: unknown[] = [];
    const stop = page.subscribe({ query: "subscription { n }" }, { next: (r) => seen.push(r.data), error: () => {}, complete: () => {} });
    expect(connection.active).toHaveLength(1);

    connection.push({ data: { n: 1 } });
    clock.advance(0);
    deliver();
    expect(seen).toEqual([{ n: 1 }]);

    connection.push({ data: { n: 2 } });
    clock.advance(16); // the batch with n = 2 is made…
    stop(); // …and the page ends the subscription before it arrives
    expect(connection.active).toHaveLength(0);
    connection.subscriptions[0]!.sink.next({ data: { n: 3 } }); // a straggler after the end
    clock.advance(16);
    expect(batches.flatMap((b) => b.events).map((e) => e.kind)).toEqual(["next"]); // n = 2 only
    deliver();
    expect(seen).toEqual([{ n: 1 }]);
  });
});
