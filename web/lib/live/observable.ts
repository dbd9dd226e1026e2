// A value outside React that components read with `useSyncExternalStore`: `get` returns the
// current snapshot (the same object until it changes), `subscribe` registers a listener.
// Changes are batched per animation frame through the scheduler given.
import type { FrameScheduler } from "./frames";

export interface Readable<T> {
  get(): T;
  subscribe(listener: () => void): () => void;
}

/** A snapshot that is replaced (never mutated) and whose listeners hear of it once per frame. */
export class FrameBatchedValue<T> implements Readable<T> {
  private listeners = new Set<() => void>();
  private queued = false;

  constructor(
    private value: T,
    private readonly frames: FrameScheduler,
  ) {}

  get = (): T => this.value;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Replaces the snapshot now; listeners are told at the next frame (once, however many sets). */
  set(value: T): void {
    this.value = value;
    this.schedule();
  }

  /** Asks for `build` to be run once before the next frame to produce the new snapshot. */
  invalidate(build: () => T): void {
    this.build = build;
    this.schedule();
  }

  private build: (() => T) | null = null;

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    this.frames.request(() => {
      this.queued = false;
      if (this.build) {
        this.value = this.build();
        this.build = null;
      }
      for (const listener of [...this.listeners]) listener();
    });
  }
}
