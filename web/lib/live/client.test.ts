// The real client against a scripted graphql-transport-ws server: the token travels in
// connection_init; after a dropped connection it reconnects with backoff, subscribes again, and
// the result held is replaced by the fresh reset (never the stale rows merged with patches);
// an expired token or a 4403 close ends the session and routes to the sign-in page. Every case
// runs twice: with the socket in the page, and as the dashboard runs it, in a worker whose relay
// hands the page batches over a message channel (structured clones, as between threads).
import { afterEach, describe, expect, it } from "vitest";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import WebSocket from "ws";
import { LiveClient, type AuthLoss, type ConnectionState, type LiveConnection } from "./client";
import { immediateScheduler } from "./frames";
import { Relay, type RelayBatch, type ToRelay } from "./relay";
import { LiveStore, type RowsSnapshot } from "./store";
import { ManualFrames } from "./testing/manualFrames";
import { FakeGraphqlServer, until } from "./testing/fakeServer";
import { WorkerConnection, type RelayPort } from "./workerConnection";
import { redirectToSignIn, setNavigate } from "@/lib/auth/signInRedirect";

type Row = { id: string; status: string };
const QUERY = "subscription { ordersPatches(limit: 5) { seq asOf { position commitTs } reset { id status } patch { upserts { index row { id status } } removedKeys { id } } } }";
const asOf = { position: "0/1", commitTs: null };
const BACKOFF = { baseMs: 20, maxMs: 100 };

let server: FakeGraphqlServer | null = null;
let client: LiveConnection | null = null;
let ports: MessagePort[] = [];
afterEach(async () => {
  client?.dispose();
  await server?.stop();
  for (const port of ports) port.close();
  client = null;
  server = null;
  ports = [];
});

interface ConnectOptions {
  expiresAt?: number;
  onAuthLost?: (reason: AuthLoss) => void;
}

type Connect = (url: string, options?: ConnectOptions) => { client: LiveConnection; store: LiveStore; frames: ManualFrames; lost: AuthLoss[] };

const inThePage: Connect = (url, options = {}) => {
  const frames = new ManualFrames();
  const lost: AuthLoss[] = [];
  client = new LiveClient({
    url,
    token: "header.payload.signature",
    expiresAt: options.expiresAt ?? Date.now() + 60_000,
    frames,
    webSocketImpl: WebSocket,
    backoff: BACKOFF,
    onAuthLost: options.onAuthLost ?? ((reason) => lost.push(reason)),
  });
  const store = new LiveStore(client, { frames, lingerMs: 0 });
  return { client, store, frames, lost };
};

const throughARelay: Connect = (url, options = {}) => {
  const frames = new ManualFrames();
  const lost: AuthLoss[] = [];
  const { port1: page, port2: worker } = new MessageChannel();
  ports = [page, worker];
  const relay = new Relay(
    (batch) => worker.postMessage(batch),
    (opened, onAuthLost) => new LiveClient({ ...opened, frames: immediateScheduler, webSocketImpl: WebSocket, backoff: BACKOFF, onAuthLost }),
  );
  worker.on("message", (message: ToRelay) => relay.receive(message));
  const port: RelayPort = {
    postMessage: (message) => page.postMessage(message),
    addEventListener: (type: "message" | "error", listener: (event: MessageEvent<RelayBatch>) => void) => {
      if (type === "message") page.on("message", (data: RelayBatch) => listener({ data } as MessageEvent<RelayBatch>));
    },
  };
  client = new WorkerConnection(port, {
    url,
    token: "header.payload.signature",
    expiresAt: options.expiresAt ?? Date.now() + 60_000,
    frames,
    onAuthLost: options.onAuthLost ?? ((reason) => lost.push(reason)),
  });
  const store = new LiveStore(client, { frames, lingerMs: 0 });
  return { client, store, frames, lost };
};

describe.each([
  ["in the page", inThePage],
  ["in a worker, through its relay", throughARelay],
] as const)("LiveClient %s", (_, connect: Connect) => {
  it("asks the server to pace a result subscription with minIntervalMs, and leaves others unpaced", async () => {
    server = await FakeGraphqlServer.start();
    const { store } = connect(server.url);
    const COUNT = "subscription { ordersAggregate { count } }";
    const paced = store.result({ query: COUNT, minIntervalMs: 100 }).retain();
    const unpaced = store.result({ query: COUNT }).retain();
    await server.waitForSubscriptions(2);
    // Two subscriptions: the same query paced and unpaced are different results.
    expect(server.subscriptions.map((s) => s.extensions)).toEqual([{ minIntervalMs: 100 }, null]);
    paced();
    unpaced();
  });

  it("reconnects after a dropped connection and replaces the stale result with the fresh reset", async () => {
    server = await FakeGraphqlServer.start();
    const { client, store, frames } = connect(server.url);
    const states: ConnectionState[] = [];
    client.connection.subscribe(() => states.push(client.connection.get().state));
    const handle = store.rows<Row>({ query: QUERY }, "ordersPatches", ["id"]);
    const release = handle.retain();
    const read = (): RowsSnapshot<Row> => {
      frames.tick();
      return handle.get();
    };

    await server.waitForSubscriptions(1);
    expect(server.inits[0]).toEqual({ Authorization: "Bearer header.payload.signature" });
    const first = server.subscriptions[0]!;
    server.next(first, { ordersPatches: { seq: 1, asOf, reset: [{ id: "1", status: "paid" }, { id: "2", status: "paid" }] } });
    server.next(first, { ordersPatches: { seq: 2, asOf, patch: { upserts: [{ index: 0, row: { id: "1", status: "picking" } }], removedKeys: [{ id: "2" }] } } });
    await until(() => read().seq === 2);
    expect(read().rows).toEqual([{ id: "1", status: "picking" }]);
    expect(client.connection.get().state).toBe("live");

    // The network drops. While it is down, the server's state moves on.
    server.dropAll();
    await until(() => (frames.tick(), client.connection.get().state !== "live"));
    await server.waitForSubscriptions(2);
    const second = server.subscriptions[1]!;
    expect(second.query).toBe(QUERY);
    // A patch that would fit the stale rows must not be merged into them before the reset.
    server.next(second, { ordersPatches: { seq: 3, asOf, patch: { upserts: [{ index: 1, row: { id: "7", status: "paid" } }], removedKeys: [] } } });
    await server.waitForSubscriptions(3); // …it makes the store ask again, for a reset
    const third = server.subscriptions[2]!;
    server.next(third, { ordersPatches: { seq: 1, asOf, reset: [{ id: "3", status: "pending" }] } });
    await until(() => read().rows[0]?.id === "3");
    expect(read().rows).toEqual([{ id: "3", status: "pending" }]);
    expect(read().resets).toBe(2);
    await until(() => (frames.tick(), client.connection.get().state === "live"));
    expect(states).toContain("reconnecting");
    release();
  });

  it("ends the session when the token expires", async () => {
    server = await FakeGraphqlServer.start();
    const { lost } = connect(server.url, { expiresAt: Date.now() + 80 });
    await until(() => lost.length > 0);
    expect(lost).toEqual(["expired"]);
    expect(client?.connection.get().state).toBe("offline");
  });

  it("ends the session when the server closes with 4403, and does not retry", async () => {
    server = await FakeGraphqlServer.start();
    const { store, lost } = connect(server.url);
    const release = store.rows<Row>({ query: QUERY }, "ordersPatches", ["id"]).retain();
    await server.waitForSubscriptions(1);
    server.closeAll(4403, "the token expired: connect again with a new one");
    await until(() => lost.length > 0);
    expect(lost).toEqual(["refused"]);
    // Longer than the first retry's backoff (at most 500 ms): a store retrying its subscription
    // must not open a socket on the disposed client.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(server.inits).toHaveLength(1);
    release();
  });

  it("tells a revoked session from a refused one by the close reason", async () => {
    server = await FakeGraphqlServer.start();
    const { store, lost } = connect(server.url);
    const release = store.rows<Row>({ query: QUERY }, "ordersPatches", ["id"]).retain();
    await server.waitForSubscriptions(1);
    server.closeAll(4403, "Forbidden: the token was revoked: sign in again for a new one");
    await until(() => lost.length > 0);
    expect(lost).toEqual(["revoked"]);
    expect(client?.connection.get().state).toBe("offline");
    release();
  });

  it("routes an expired session to the sign-in page, remembering where the user was", async () => {
    const visited: string[] = [];
    setNavigate((url) => visited.push(url));
    server = await FakeGraphqlServer.start();
    connect(server.url, { expiresAt: Date.now() + 50, onAuthLost: (reason) => redirectToSignIn(reason) });
    await until(() => visited.length > 0);
    expect(visited[0]).toMatch(/^\/signin\/\?reason=expired/);
  });
});
