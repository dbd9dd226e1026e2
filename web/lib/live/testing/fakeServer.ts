// Test support: a minimal graphql-transport-ws server (on `ws`, port 0) whose answers the test
// scripts. It records each connection's `connection_init` payload and subscriptions, and can
// drop connections or close them with a code.
import { WebSocketServer, type WebSocket } from "ws";
import type { AddressInfo } from "node:net";

export interface ServerSubscription {
  readonly id: string;
  readonly query: string;
  /** The subscribe payload's `extensions` (null when it had none). */
  readonly extensions: Record<string, unknown> | null;
  readonly socket: WebSocket;
}

export class FakeGraphqlServer {
  readonly inits: unknown[] = [];
  readonly subscriptions: ServerSubscription[] = [];
  private readonly server: WebSocketServer;
  private readonly waiters: (() => void)[] = [];
  /** Called for every subscribe, to send its first answer. */
  onSubscribe: (subscription: ServerSubscription) => void = () => {};

  private constructor(server: WebSocketServer) {
    this.server = server;
    server.on("connection", (socket) => {
      socket.on("message", (data) => {
        const message = JSON.parse(String(data)) as { type: string; id?: string; payload?: { query?: string; extensions?: Record<string, unknown> } };
        if (message.type === "connection_init") {
          this.inits.push(message.payload);
          socket.send(JSON.stringify({ type: "connection_ack" }));
        } else if (message.type === "subscribe" && message.id) {
          const subscription = { id: message.id, query: message.payload?.query ?? "", extensions: message.payload?.extensions ?? null, socket };
          this.subscriptions.push(subscription);
          this.onSubscribe(subscription);
          this.wake();
        } else if (message.type === "ping") {
          socket.send(JSON.stringify({ type: "pong" }));
        }
      });
    });
  }

  static async start(): Promise<FakeGraphqlServer> {
    const server = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (protocols) => (protocols.has("graphql-transport-ws") ? "graphql-transport-ws" : false) });
    await new Promise<void>((resolve) => server.on("listening", () => resolve()));
    return new FakeGraphqlServer(server);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/graphql`;
  }

  next(subscription: ServerSubscription, data: unknown): void {
    subscription.socket.send(JSON.stringify({ id: subscription.id, type: "next", payload: { data } }));
  }

  /** Drops every connection as a network failure would (no close frame). */
  dropAll(): void {
    for (const client of this.server.clients) client.terminate();
  }

  closeAll(code: number, reason: string): void {
    for (const client of this.server.clients) client.close(code, reason);
  }

  /** Resolves once `count` subscriptions have been received in all. */
  async waitForSubscriptions(count: number, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.subscriptions.length < count) {
      if (Date.now() > deadline) throw new Error(`waited for ${count} subscriptions, got ${this.subscriptions.length}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  async stop(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
