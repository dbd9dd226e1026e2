// The live data store: one entry per distinct subscription (document + variables), shared by
// every component that shows it, held outside React. Messages mutate the entry's state as they
// arrive; the snapshot components read is rebuilt and announced at most once per animation
// frame. An entry subscribes when its first reader arrives and stops a little after its last
// leaves (so a remount does not resubscribe). Patch results that lose continuity — a seq gap,
// or the socket closing — take nothing but a fresh `reset`: a gap resubscribes at once, and a
// reconnect's resubscription starts with one.
import type { ExecutionResultLike, GraphQLErrorLike, LiveTransport, SubscriptionRequest } from "./client";
import { backoffDelay } from "./backoff";
import type { FrameScheduler } from "./frames";
import { FrameBatchedValue, type Readable } from "./observable";
import { KeyedRows, type AsOf, type LiveRow, type PatchUpdate, type RowChange } from "./patches";

export type LiveStatus = "loading" | "live" | "error";

export interface ResultSnapshot<T> {
  readonly status: LiveStatus;
  readonly data: T | null;
  readonly error: string | null;
  /** `extensions.asOf` of the latest message, when the server sent one. */
  readonly asOf: AsOf | null;
  readonly receivedAt: number | null;
}

export interface RowsSnapshot<Row extends LiveRow> {
  readonly status: LiveStatus;
  readonly rows: readonly Row[];
  /** Recently changed rows by key (see `RowChange`); the same map object across snapshots. */
  readonly changes: ReadonlyMap<string, RowChange>;
  readonly seq: number | null;
  readonly asOf: AsOf | null;
  readonly resets: number;
  readonly error: string | null;
  readonly receivedAt: number | null;
}

/** A live value a component can hold on to: `retain` while shown, call what it returns to let go. */
/** A keyed result before its first frame: what a new entry holds and an idle hook shows. */
export function loadingRows<Row extends LiveRow>(): RowsSnapshot<Row> {
  return { status: "loading", rows: [], changes: new Map(), seq: null, asOf: null, resets: 0, error: null, receivedAt: null };
}

export interface LiveHandle<S> extends Readable<S> {
  retain(): () => void;
}

/** Operation errors after which subscribing again may succeed (table loading, policy reload, …). */
const RETRYABLE_CODES: ReadonlySet<string> = new Set(["NOT_READY", "FORBIDDEN", "SCHEMA_CHANGED", "CONNECTION_CLOSED", "CONNECTION_ERROR", "INTERNAL_SERVER_ERROR"]);

export interface LiveStoreOptions {
  readonly frames: FrameScheduler;
  readonly now?: () => number;
  /** How long an entry with no readers keeps its subscription (ms). */
  readonly lingerMs?: number;
  readonly random?: () => number;
}

abstract class Entry<S> implements LiveHandle<S> {
  protected readonly value: FrameBatchedValue<S>;
  private readers = 0;
  private stop: (() => void) | null = null;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  /** Bumped on every (re)subscription, so callbacks of an old one are ignored. */
  private generation = 0;

  constructor(
    readonly key: string,
    protected readonly request: SubscriptionRequest,
    protected readonly store: LiveStore,
    initial: S,
  ) {
    this.value = new FrameBatchedValue(initial, store.frames);
  }

  get = (): S => this.value.get();
  subscribe = (listener: () => void): (() => void) => this.value.subscribe(listener);

  retain(): () => void {
    this.readers += 1;
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    if (!this.stop && !this.retryTimer) this.start();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.readers -= 1;
      if (this.readers === 0) this.lingerTimer = setTimeout(() => this.close(), this.store.lingerMs);
    };
  }

  /** Subscribes again from scratch: the next message is a whole result. */
  protected restart(): void {
    this.unsubscribe();
    this.start();
  }

  protected abstract onResult(result: ExecutionResultLike): void;
  protected abstract onError(message: string): void;
  /** The socket closed: whatever is held is no longer current. */
  abstract onDisconnect(): void;

  private start(): void {
    const generation = ++this.generation;
    this.stop = this.store.transport.subscribe(this.request, {
      next: (result) => {
        if (generation !== this.generation) return;
        if (result.errors && result.errors.length > 0 && !result.data) {
          this.fail(result.errors);
          return;
        }
        this.failures = 0;
        this.onResult(result);
      },
      error: (errors) => {
        if (generation !== this.generation) return;
        this.stop = null;
        this.fail(errors);
      },
      complete: () => {
        if (generation !== this.generation) return;
        // The server ended a subscription we still want (not our own unsubscribe): ask again.
        this.stop = null;
        this.scheduleRetry();
      },
    });
  }

  private fail(errors: readonly GraphQLErrorLike[]): void {
    const first = errors[0];
    const code = first?.extensions?.code ?? "";
    this.onError(first ? `${first.message}${code ? ` (${code})` : ""}` : "the subscription failed");
    if (code === "UNAUTHENTICATED" || code === "INVALID_TOKEN" || code === "TOKEN_EXPIRED" || code === "TOKEN_REVOKED") return;
    if (RETRYABLE_CODES.has(code)) this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.unsubscribe();
    if (this.readers === 0 || this.retryTimer) return;
    const delay = backoffDelay(this.failures++, undefined, this.store.random);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.readers > 0) this.start();
    }, delay);
  }

  private unsubscribe(): void {
    this.generation += 1;
    const stop = this.stop;
    this.stop = null;
    stop?.();
  }

  private close(): void {
    this.lingerTimer = null;
    if (this.readers > 0) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.unsubscribe();
    this.store.forget(this);
  }
}

class ResultEntry<T> extends Entry<ResultSnapshot<T>> {
  constructor(key: string, request: SubscriptionRequest, store: LiveStore) {
    super(key, request, store, { status: "loading", data: null, error: null, asOf: null, receivedAt: null });
  }

  protected onResult(result: ExecutionResultLike): void {
    const asOf = readAsOf(result.extensions?.["asOf"]);
    this.value.set({ status: "live", data: (result.data ?? null) as T | null, error: null, asOf, receivedAt: this.store.now() });
  }

  protected onError(message: string): void {
    this.value.set({ ...this.value.get(), status: "error", error: message });
  }

  onDisconnect(): void {}
}

class RowsEntry<Row extends LiveRow> extends Entry<RowsSnapshot<Row>> {
  private readonly rows: KeyedRows<Row>;

  constructor(key: string, request: SubscriptionRequest, store: LiveStore, private readonly field: string, keyFields: readonly string[]) {
    super(key, request, store, loadingRows<Row>());
    this.rows = new KeyedRows<Row>(keyFields);
  }

  protected onResult(result: ExecutionResultLike): void {
    const update = result.data?.[this.field];
    if (!isPatchUpdate(update)) {
      this.onError(`the server sent no \`${this.field}\``);
      return;
    }
    if (this.rows.apply(update as PatchUpdate<Row, LiveRow>, this.store.now()) === "gap") {
      // A missed update: these rows cannot be patched any more; a new subscription starts with a reset.
      this.restart();
      return;
    }
    this.publish(null);
  }

  protected onError(message: string): void {
    this.publish(message);
  }

  onDisconnect(): void {
    this.rows.invalidate();
  }

  private publish(error: string | null): void {
    const receivedAt = error ? this.value.get().receivedAt : this.store.now();
    this.value.invalidate(() => ({
      status: error ? "error" : "live",
      rows: this.rows.rows,
      changes: this.rows.changes,
      seq: this.rows.seq,
      asOf: this.rows.asOf,
      resets: this.rows.resets,
      error,
      receivedAt,
    }));
  }
}

function isPatchUpdate(value: unknown): value is PatchUpdate<LiveRow, LiveRow> {
  return typeof value === "object" && value !== null && typeof (value as { seq?: unknown }).seq === "number";
}

function readAsOf(value: unknown): AsOf | null {
  if (typeof value !== "object" || value === null) return null;
  const { position, commitTs } = value as { position?: unknown; commitTs?: unknown };
  if (typeof position !== "string") return null;
  return { position, commitTs: typeof commitTs === "string" ? commitTs : null };
}

function requestKey(request: SubscriptionRequest): string {
  return `${request.query}\n${JSON.stringify(request.variables ?? {})}\n${request.minIntervalMs ?? 0}`;
}

export class LiveStore {
  readonly frames: FrameScheduler;
  readonly now: () => number;
  readonly lingerMs: number;
  readonly random: () => number;
  private readonly entries = new Map<string, Entry<unknown>>();
  private readonly stopListening: () => void;

  constructor(
    readonly transport: LiveTransport,
    options: LiveStoreOptions,
  ) {
    this.frames = options.frames;
    this.now = options.now ?? Date.now;
    this.lingerMs = options.lingerMs ?? 2_000;
    this.random = options.random ?? Math.random;
    this.stopListening = transport.onDisconnect(() => {
      for (const entry of this.entries.values()) entry.onDisconnect();
    });
  }

  /** A plain live query: every message is the whole result. */
  result<T>(request: SubscriptionRequest): LiveHandle<ResultSnapshot<T>> {
    const key = `result:${requestKey(request)}`;
    const existing = this.entries.get(key);
    if (existing) return existing as unknown as LiveHandle<ResultSnapshot<T>>;
    const entry = new ResultEntry<T>(key, request, this);
    this.entries.set(key, entry as Entry<unknown>);
    return entry;
  }

  /** An incremental live query (`…Patches` root field `field`), held as rows keyed by `keyFields`. */
  rows<Row extends LiveRow>(request: SubscriptionRequest, field: string, keyFields: readonly string[]): LiveHandle<RowsSnapshot<Row>> {
    const key = `rows:${field}:${keyFields.join(",")}:${requestKey(request)}`;
    const existing = this.entries.get(key);
    if (existing) return existing as unknown as LiveHandle<RowsSnapshot<Row>>;
    const entry = new RowsEntry<Row>(key, request, this, field, keyFields);
    this.entries.set(key, entry as unknown as Entry<unknown>);
    return entry;
  }

  /** How many subscriptions are held (tests, diagnostics). */
  get size(): number {
    return this.entries.size;
  }

  forget(entry: Entry<unknown>): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
  }

  dispose(): void {
    this.stopListening();
    this.entries.clear();
  }
}
