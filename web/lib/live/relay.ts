// The live connection's far side, run in a dedicated worker (`socket.worker.ts`): it holds the
// tab's one graphql-ws socket, so the page's main thread no longer runs a task, a JSON parse and
// the protocol's bookkeeping for every message. At 1,000 transactions a second the Orders table
// alone gets hundreds of patches a second; the relay hands them to the page in batches, at most
// one per `batchMs` (a frame), each an ordered list of what happened — results, errors, ends,
// disconnects and connection states in the order the socket saw them, so a disconnect still
// lands between the last patch before it and the reset after it. An idle connection's first
// message goes at once: batching only ever waits while messages arrive faster than frames.
// Pure message passing around a `LiveConnection`, so it is unit-tested without a worker.
import type {
  AuthLoss,
  ConnectionSnapshot,
  ExecutionResultLike,
  GraphQLErrorLike,
  LiveConnection,
  SubscriptionRequest,
} from "./client";

/** What the relay needs to open the connection (the page's session; no functions cross). */
export interface RelayOpenOptions {
  readonly url: string;
  readonly token: string;
  readonly expiresAt: number;
}

/** From the page to the relay. */
export type ToRelay =
  | { readonly type: "open"; readonly options: RelayOpenOptions }
  | { readonly type: "subscribe"; readonly id: number; readonly request: SubscriptionRequest }
  | { readonly type: "unsubscribe"; readonly id: number }
  | { readonly type: "offline" }
  | { readonly type: "dispose" };

/** One thing that happened on the socket, for the page to replay in order. */
export type RelayEvent =
  | { readonly kind: "next"; readonly id: number; readonly result: ExecutionResultLike }
  | { readonly kind: "error"; readonly id: number; readonly errors: readonly GraphQLErrorLike[] }
  | { readonly kind: "complete"; readonly id: number }
  | { readonly kind: "disconnect" }
  | { readonly kind: "connection"; readonly snapshot: ConnectionSnapshot }
  | { readonly kind: "authLost"; readonly reason: AuthLoss };

/** From the relay to the page: a batch of events and the age of the data after them. */
export interface RelayBatch {
  readonly type: "events";
  readonly events: readonly RelayEvent[];
  readonly lastMessageAt: number | null;
}

export interface RelayOptions {
  /** At most one batch per this many ms (default: a 60 Hz frame). */
  readonly batchMs?: number;
  readonly now?: () => number;
  readonly setTimer?: (callback: () => void, ms: number) => unknown;
}

export class Relay {
  private connection: LiveConnection | null = null;
  private readonly subscriptions = new Map<number, () => void>();
  private queue: RelayEvent[] = [];
  private timerSet = false;
  private lastFlush = Number.NEGATIVE_INFINITY;
  private readonly batchMs: number;
  private readonly now: () => number;
  private readonly setTimer: (callback: () => void, ms: number) => unknown;

  constructor(
    private readonly post: (batch: RelayBatch) => void,
    private readonly open: (options: RelayOpenOptions, onAuthLost: (reason: AuthLoss) => void) => LiveConnection,
    options: RelayOptions = {},
  ) {
    this.batchMs = options.batchMs ?? 16;
    this.now = options.now ?? Date.now;
    this.setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms));
  }

  receive(message: ToRelay): void {
    switch (message.type) {
      case "open":
        this.start(message.options);
        return;
      case "subscribe":
        this.subscribe(message.id, message.request);
        return;
      case "unsubscribe": {
        const stop = this.subscriptions.get(message.id);
        this.subscriptions.delete(message.id);
        stop?.();
        return;
      }
      case "offline":
        this.connection?.setBrowserOnline(false);
        return;
      case "dispose":
        this.connection?.dispose();
        this.subscriptions.clear();
        this.flush();
        return;
    }
  }

  private start(options: RelayOpenOptions): void {
    if (this.connection) return;
    const connection = this.open(options, (reason) => this.push({ kind: "authLost", reason }));
    this.connection = connection;
    connection.onDisconnect(() => this.push({ kind: "disconnect" }));
    connection.connection.subscribe(() => this.push({ kind: "connection", snapshot: connection.connection.get() }));
  }

  private subscribe(id: number, request: SubscriptionRequest): void {
    const connection = this.connection;
    if (!connection) {
      this.push({ kind: "error", id, errors: [{ message: "the live connection is not open", extensions: { code: "CLIENT_DISPOSED" } }] });
      return;
    }
    this.subscriptions.set(
      id,
      connection.subscribe(request, {
        next: (result) => {
          if (this.subscriptions.has(id)) this.push({ kind: "next", id, result });
        },
        error: (errors) => {
          this.subscriptions.delete(id);
          this.push({ kind: "error", id, errors });
        },
        complete: () => {
          this.subscriptions.delete(id);
          this.push({ kind: "complete", id });
        },
      }),
    );
  }

  private push(event: RelayEvent): void {
    this.queue.push(event);
    if (this.timerSet) return;
    this.timerSet = true;
    // A macrotask even when no batch went lately: messages already queued behind this one join it.
    this.setTimer(() => this.flush(), Math.max(0, this.lastFlush + this.batchMs - this.now()));
  }

  private flush(): void {
    this.timerSet = false;
    if (this.queue.length === 0) return;
    this.lastFlush = this.now();
    const events = this.queue;
    this.queue = [];
    this.post({ type: "events", events, lastMessageAt: this.connection?.lastMessageAt ?? null });
  }
}
