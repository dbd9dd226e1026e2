// Test support: a frame scheduler whose frames run when the test says so.
import type { FrameScheduler } from "../frames";

export class ManualFrames implements FrameScheduler {
  private pending: (() => void)[] = [];
  frames = 0;

  request(callback: () => void): void {
    this.pending.push(callback);
  }

  get waiting(): number {
    return this.pending.length;
  }

  /** Runs one frame: every callback requested so far. */
  tick(): void {
    this.frames += 1;
    const callbacks = this.pending;
    this.pending = [];
    for (const callback of callbacks) callback();
  }
}
