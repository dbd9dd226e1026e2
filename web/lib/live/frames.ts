// Coalesces redraw requests into one callback per animation frame. Live results can change
// hundreds of times a second; the screen only needs them once per frame, so the store marks
// results dirty as messages arrive and notifies React here, at most once per frame.

export interface FrameScheduler {
  /** Runs `callback` before the next frame; requests made before it runs share that one call. */
  request(callback: () => void): void;
}

/** Runs each callback at once: for a client whose states are passed on as they change (the worker's). */
export const immediateScheduler: FrameScheduler = { request: (callback) => callback() };

/** The browser's scheduler; falls back to a 16 ms timer where there is no `requestAnimationFrame` (tests, SSR). */
export function animationFrameScheduler(): FrameScheduler {
  let pending: (() => void)[] = [];
  let scheduled = false;
  const run = () => {
    scheduled = false;
    const callbacks = pending;
    pending = [];
    for (const callback of callbacks) callback();
  };
  return {
    request(callback) {
      pending.push(callback);
      if (scheduled) return;
      scheduled = true;
      if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
      else setTimeout(run, 16);
    },
  };
}
