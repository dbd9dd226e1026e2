// The dedicated worker that holds the tab's live socket (see `relay.ts` for why). The page starts
// it from `runtime.ts` and talks to it through `WorkerConnection`; this file only wires the relay
// to the worker's message port. Connection states are passed on as they change (the page batches
// its own redraws per frame), so the client here needs no frame scheduler of its own.
import { LiveClient } from "./client";
import { immediateScheduler } from "./frames";
import { Relay, type RelayBatch, type ToRelay } from "./relay";

// Typed against the DOM library, which shares `postMessage(message)`, `addEventListener` and
// `close()` with a dedicated worker's global scope.
const scope = self;

const relay = new Relay(
  (batch: RelayBatch) => scope.postMessage(batch),
  (options, onAuthLost) => new LiveClient({ ...options, frames: immediateScheduler, onAuthLost }),
);

scope.addEventListener("message", (event: MessageEvent<ToRelay>) => {
  relay.receive(event.data);
  // Let the socket's close frame go out before the worker ends.
  if (event.data.type === "dispose") setTimeout(() => scope.close(), 1_000);
});
