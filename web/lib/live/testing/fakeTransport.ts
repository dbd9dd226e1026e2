// Test support: a transport whose messages the test pushes by hand.
import type { ExecutionResultLike, LiveTransport, SubscriptionRequest, SubscriptionSink } from "../client";

export class FakeTransport implements LiveTransport {
  readonly subscriptions: { request: SubscriptionRequest; sink: SubscriptionSink; active: boolean }[] = [];
  private disconnectListeners = new Set<() => void>();

  subscribe(request: SubscriptionRequest, sink: SubscriptionSink): () => void {
    const subscription = { request, sink, active: true };
    this.subscriptions.push(subscription);
    return () => {
      subscription.active = false;
    };
  }

  onDisconnect(listener: () => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  get active() {
    return this.subscriptions.filter((s) => s.active);
  }

  /** Sends a message to the newest active subscription. */
  push(result: ExecutionResultLike): void {
    const last = this.active.at(-1);
    if (!last) throw new Error("no active subscription");
    last.sink.next(result);
  }

  disconnect(): void {
    for (const listener of this.disconnectListeners) listener();
  }
}
