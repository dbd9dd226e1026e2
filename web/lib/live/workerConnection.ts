// The page's side of the live connection when the socket lives in a worker (`relay.ts`): the
// same `LiveConnection` the store and the badge use, fed by the relay's batches. Each batch is
// one task on the main thread however many messages it carries; its events are replayed in
// order into the subscriptions' sinks, so the store patches, invalidates and redraws per frame
// exactly as it does with the socket in the page. A subscription ended here drops whatever the
// relay had already sent for it.
import { refuseEnded, type AuthLoss, type ConnectionSnapshot, type LiveConnection, type SubscriptionRequest, type SubscriptionSink } from "./client";
import type { FrameScheduler } from "./frames";
import { FrameBatchedValue, type Readable } from "./observable";
import type { RelayBatch, RelayOpenOptions, ToRelay } from "./relay";

/** A worker, or anything else that carries messages to a relay and back (tests). */
export interface RelayPort {
  postMessage(message: ToRelay): void;
  addEventListener(type: "message", listener: (event: MessageEvent<RelayBatch>) => void): void;
  addEventListener(type: "error", listener: (event: Event) => void): void;
}

export interface WorkerConnectionOptions extends RelayOpenOptions {
  readonly onAuthLost: (reason: AuthLoss) => void;
  readonly frames: FrameScheduler;
  readonly now?: () => number;
}

export class WorkerConnection implements LiveConnection {
  readonly connection: Readable<ConnectionSnapshot>;
  lastMessageAt: number | null = null;

  private readonly state: FrameBatchedValue<ConnectionSnapshot>;
  private readonly sinks = new Map<number, SubscriptionSink>();
  private readonly disconnectListeners = new Set<() => void>();
  private nextId = 1;
  private disposed = false;
  private authLost = false;

  constructor(
    private readonly port: RelayPort,
    private readonly options: WorkerConnectionOptions,
  ) {
    const now = options.now ?? Date.now;
    this.state = new FrameBatchedValue<ConnectionSnapshot>({ state: "idle", since: now(), attempts: 0 }, options.frames);
    this.connection = this.state;
    port.addEventListener("message", (event) => this.receive(event.data));
    port.addEventListener("error", () => {
      // The worker could not start (its script failed to load): say so rather than wait forever.
      console.error("opslive: the live connection's worker failed to start");
      this.state.set({ state: "offline", since: now(), attempts: 0 });
    });
    const { url, token, expiresAt } = options;
    port.postMessage({ type: "open", options: { url, token, expiresAt } });
  }

  subscribe(request: SubscriptionRequest, sink: SubscriptionSink): () => void {
    if (this.disposed) return refuseEnded(sink, this.authLost);
    const id = this.nextId++;
    this.sinks.set(id, sink);
    this.port.postMessage({ type: "subscribe", id, request });
    return () => {
      if (this.sinks.delete(id) && !this.disposed) this.port.postMessage({ type: "unsubscribe", id });
    };
  }

  onDisconnect(listener: () => void): () => void {
    this.disconnectListeners.add(listener);
    return () => {
      this.disconnectListeners.delete(listener);
    };
  }

  setBrowserOnline(online: boolean): void {
    if (!online && !this.disposed) this.port.postMessage({ type: "offline" });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.sinks.clear();
    this.port.postMessage({ type: "dispose" });
  }

  /** The sink of a subscription the relay ended: it hears this last event and nothing after. */
  private take(id: number): SubscriptionSink | undefined {
    const sink = this.sinks.get(id);
    this.sinks.delete(id);
    return sink;
  }

  private receive(batch: RelayBatch): void {
    if (batch.type !== "events") return;
    this.lastMessageAt = batch.lastMessageAt;
    for (const event of batch.events) {
      switch (event.kind) {
        case "next":
          this.sinks.get(event.id)?.next(event.result);
          break;
        case "error":
          this.take(event.id)?.error(event.errors);
          break;
        case "complete":
          this.take(event.id)?.complete();
          break;
        case "disconnect":
          for (const listener of [...this.disconnectListeners]) listener();
          break;
        case "connection":
          this.state.set(event.snapshot);
          break;
        case "authLost":
          if (this.authLost) break;
          this.authLost = true;
          this.disposed = true;
          this.options.onAuthLost(event.reason);
          break;
      }
    }
  }
}
