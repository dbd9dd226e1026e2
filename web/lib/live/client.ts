// One graphql-transport-ws connection per tab (graphql-ws used directly: a few KB, no cache in
// the way). It carries the token in `connection_init`, reconnects with exponential backoff and
// jitter (graphql-ws then subscribes every active operation again, and the server answers each
// with a fresh result), publishes the connection state for the badge on every page, and hands
// the user to the sign-in page when the token expires or the server refuses it (close 4401/4403).
import { createClient, type Client, type Sink } from "graphql-ws";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
import type { FrameScheduler } from "./frames";
import { FrameBatchedValue, type Readable } from "./observable";

/** `idle`: nothing has been subscribed yet (the socket is lazy), so there is nothing to be stale. */
export type ConnectionState = "idle" | "connecting" | "live" | "reconnecting" | "offline";

export interface ConnectionSnapshot {
  readonly state: ConnectionState;
  /** When the state was entered (ms since the epoch). */
  readonly since: number;
  /** Failed attempts since the last successful connection. */
  readonly attempts: number;
}

export interface SubscriptionRequest {
  readonly query: string;
  readonly variables?: Readonly<Record<string, unknown>>;
  /**
   * At most one result per this many ms (the server's `extensions.minIntervalMs`): a result goes
   * at once when none went in the interval, quicker ones wait and the newest stands for them.
   * For panels that show a count, not every transaction (a chart, a funnel); unset for tables.
   */
  readonly minIntervalMs?: number;
}

export interface GraphQLErrorLike {
  readonly message: string;
  readonly extensions?: { readonly code?: string } & Readonly<Record<string, unknown>>;
}

export interface ExecutionResultLike {
  readonly data?: Readonly<Record<string, unknown>> | null;
  readonly errors?: readonly GraphQLErrorLike[];
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export interface SubscriptionSink {
  next(result: ExecutionResultLike): void;
  /** Operation errors (GraphQL errors), or the connection ended for good (auth, dispose). */
  error(errors: readonly GraphQLErrorLike[]): void;
  complete(): void;
}

/** What the store needs from a connection (the real client, or a fake in tests). */
export interface LiveTransport {
  subscribe(request: SubscriptionRequest, sink: SubscriptionSink): () => void;
  /** Called when the socket closes: results held must then wait for their fresh reset. */
  onDisconnect(listener: () => void): () => void;
}

export type AuthLoss = "expired" | "revoked" | "refused";

/** The tab's connection as pages see it: subscriptions, its state for the badge, the data's age. */
export interface LiveConnection extends LiveTransport {
  readonly connection: Readable<ConnectionSnapshot>;
  /** When the last message from the server arrived (ms since the epoch): the age of the data. */
  readonly lastMessageAt: number | null;
  /** Marks the browser offline/online (window events), which the socket may notice late. */
  setBrowserOnline(online: boolean): void;
  dispose(): void;
}

export interface LiveClientOptions {
  readonly url: string;
  readonly token: string;
  /** Token expiry in ms since the epoch; the client ends the session then. */
  readonly expiresAt: number;
  readonly onAuthLost: (reason: AuthLoss) => void;
  readonly frames: FrameScheduler;
  readonly webSocketImpl?: unknown;
  readonly backoff?: BackoffOptions;
  readonly random?: () => number;
  readonly now?: () => number;
  /** Failed attempts after which the badge says offline rather than reconnecting. */
  readonly offlineAfter?: number;
}

/**
 * Answers a subscription made on a connection that has ended (signed out, token refused or
 * expired): an error, never a socket. Returns its (no-op) unsubscribe.
 */
export function refuseEnded(sink: SubscriptionSink, authLost: boolean): () => void {
  const code = authLost ? "UNAUTHENTICATED" : "CLIENT_DISPOSED";
  queueMicrotask(() => sink.error([{ message: "the live connection has ended", extensions: { code } }]));
  return () => {};
}

/** Close codes after which the token, not the network, is the problem. */
export const AUTH_CLOSE_CODES: ReadonlySet<number> = new Set([4401, 4403]);

interface CloseLike {
  readonly code: number;
  readonly reason?: string;
}

function isCloseLike(value: unknown): value is CloseLike {
  return typeof value === "object" && value !== null && typeof (value as { code?: unknown }).code === "number";
}

export class LiveClient implements LiveConnection {
  readonly connection: Readable<ConnectionSnapshot>;
  /** When the last message from the server arrived (ms since the epoch): the age of the data. */
  lastMessageAt: number | null = null;

  private readonly state: FrameBatchedValue<ConnectionSnapshot>;
  private readonly client: Client;
  private readonly disconnectListeners = new Set<() => void>();
  private readonly now: () => number;
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;
  private attempts = 0;
  private authLost = false;
  private disposed = false;

  constructor(private readonly options: LiveClientOptions) {
    this.now = options.now ?? Date.now;
    this.state = new FrameBatchedValue<ConnectionSnapshot>({ state: "idle", since: this.now(), attempts: 0 }, options.frames);
    this.connection = this.state;
    const backoff = options.backoff ?? DEFAULT_BACKOFF;
    const random = options.random ?? Math.random;
    const offlineAfter = options.offlineAfter ?? 4;
    this.client = createClient({
      url: options.url,
      connectionParams: () => ({ Authorization: `Bearer ${options.token}` }),
      lazy: true,
      lazyCloseTimeout: 3_000,
      keepAlive: 15_000,
      retryAttempts: Number.POSITIVE_INFINITY,
      retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, backoffDelay(retries, backoff, random))),
      shouldRetry: (event) => !(isCloseLike(event) && AUTH_CLOSE_CODES.has(event.code)) && !this.authLost,
      ...(options.webSocketImpl ? { webSocketImpl: options.webSocketImpl } : {}),
      on: {
        connecting: (isRetry) => {
          if (isRetry) this.attempts += 1;
          const state: ConnectionState = !isRetry ? "connecting" : this.attempts >= offlineAfter ? "offline" : "reconnecting";
          this.setState(state);
        },
        connected: () => {
          this.attempts = 0;
          this.setState("live");
        },
        message: () => {
          this.lastMessageAt = this.now();
        },
        closed: (event) => {
          for (const listener of [...this.disconnectListeners]) listener();
          if (isCloseLike(event) && AUTH_CLOSE_CODES.has(event.code)) {
            // The server says why in the close reason ("Forbidden: the token was revoked: …").
            this.loseAuth(/revoked/i.test(event.reason ?? "") ? "revoked" : "refused");
            return;
          }
          // A lazy close with nothing subscribed is not a loss of connection.
          if (!this.disposed && this.state.get().state === "live") this.setState("reconnecting");
        },
      },
    });
    const untilExpiry = options.expiresAt - this.now();
    if (untilExpiry <= 0) queueMicrotask(() => this.loseAuth("expired"));
    else this.expiryTimer = setTimeout(() => this.loseAuth("expired"), Math.min(untilExpiry, 2 ** 31 - 1));
  }

  subscribe(request: SubscriptionRequest, sink: SubscriptionSink): () => void {
    // A disposed client (signed out, token refused or expired) must not open a socket again:
    // graphql-ws would reconnect for a subscription made after dispose (a store retrying a
    // completed subscription did that, after a 4403).
    if (this.disposed) return refuseEnded(sink, this.authLost);
    const wsSink: Sink<ExecutionResultLike> = {
      next: (result) => sink.next(result),
      error: (error: unknown) => sink.error(toErrors(error)),
      complete: () => sink.complete(),
    };
    const payload = { query: request.query, variables: request.variables ? { ...request.variables } : {} };
    return this.client.subscribe(request.minIntervalMs ? { ...payload, extensions: { minIntervalMs: request.minIntervalMs } } : payload, wsSink);
  }

  onDisconnect(listener: () => void): () => void {
    this.disconnectListeners.add(listener);
    return () => {
      this.disconnectListeners.delete(listener);
    };
  }

  /** Marks the browser offline/online (window events), which the socket may notice late. */
  setBrowserOnline(online: boolean): void {
    if (!online) this.setState("offline");
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    void this.client.dispose();
  }

  private loseAuth(reason: AuthLoss): void {
    if (this.authLost) return;
    this.authLost = true;
    this.setState("offline");
    this.dispose();
    this.options.onAuthLost(reason);
  }

  private setState(state: ConnectionState): void {
    const current = this.state.get();
    if (current.state === state && current.attempts === this.attempts) return;
    this.state.set({ state, since: current.state === state ? current.since : this.now(), attempts: this.attempts });
  }
}

function toErrors(error: unknown): readonly GraphQLErrorLike[] {
  if (Array.isArray(error)) return error as GraphQLErrorLike[];
  if (isCloseLike(error)) {
    const code = AUTH_CLOSE_CODES.has(error.code) ? "UNAUTHENTICATED" : "CONNECTION_CLOSED";
    return [{ message: `connection closed (${error.code}${error.reason ? `: ${error.reason}` : ""})`, extensions: { code } }];
  }
  if (error instanceof Error) return [{ message: error.message, extensions: { code: "CONNECTION_ERROR" } }];
  return [{ message: "the connection failed", extensions: { code: "CONNECTION_ERROR" } }];
}
