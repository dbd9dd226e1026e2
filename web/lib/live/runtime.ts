// The tab's one live connection and store, created for the signed-in session on first use and
// replaced when the token changes. Pages never create clients: they ask for `liveRuntime()`.
// The socket itself runs in a dedicated worker (`socket.worker.ts`), which hands the page its
// messages in per-frame batches; the store and the pages see the same `LiveConnection` either way.
import { loadSession, type Session } from "@/lib/auth/token";
import { redirectToSignIn } from "@/lib/auth/signInRedirect";
import type { LiveConnection } from "./client";
import { animationFrameScheduler } from "./frames";
import { LiveStore } from "./store";
import { WorkerConnection } from "./workerConnection";

export interface LiveRuntime {
  readonly session: Session;
  readonly client: LiveConnection;
  readonly store: LiveStore;
}

let current: LiveRuntime | null = null;

function socketUrl(): string {
  const { protocol, host } = window.location;
  return `${protocol === "https:" ? "wss:" : "ws:"}//${host}/graphql`;
}

/** The runtime for the stored session; null (and a trip to the sign-in page) without one. */
export function liveRuntime(): LiveRuntime | null {
  const session = loadSession();
  if (!session) {
    current?.client.dispose();
    current = null;
    return null;
  }
  if (current && current.session.token === session.token) return current;
  current?.client.dispose();
  current?.store.dispose();
  const frames = animationFrameScheduler();
  const worker = new Worker(new URL("./socket.worker.ts", import.meta.url), { type: "module", name: "opslive-live" });
  const client = new WorkerConnection(worker, {
    url: socketUrl(),
    token: session.token,
    expiresAt: session.expiresAt,
    frames,
    onAuthLost: (reason) => redirectToSignIn(reason),
  });
  window.addEventListener("offline", () => client.setBrowserOnline(false));
  current = { session, client, store: new LiveStore(client, { frames }) };
  return current;
}

/** Ends the tab's connection (sign-out). */
export function disposeLiveRuntime(): void {
  current?.client.dispose();
  current?.store.dispose();
  current = null;
}
