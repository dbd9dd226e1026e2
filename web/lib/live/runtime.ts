// The tab's one live connection and store, created for the signed-in session on first use and
// replaced when the token changes. Pages never create clients: they ask for `liveRuntime()`.
// Where a core is free for it, the socket runs in a dedicated worker (`socket.worker.ts`), which
// parses the messages and hands the page per-frame batches; the store and the pages see the same
// `LiveConnection` either way.
import { loadSession, type Session } from "@/lib/auth/token";
import { redirectToSignIn } from "@/lib/auth/signInRedirect";
import { LiveClient, type AuthLoss, type LiveConnection } from "./client";
import { animationFrameScheduler } from "./frames";
import { LiveStore } from "./store";
import { WorkerConnection } from "./workerConnection";

export interface LiveRuntime {
  readonly session: Session;
  readonly client: LiveConnection;
  readonly store: LiveStore;
}

let current: LiveRuntime | null = null;

/** Overrides where the socket runs (`"worker"` or `"page"`), for tests and comparisons. */
const LIVE_SOCKET_KEY = "opslive.liveSocket";

/**
 * Whether the socket goes to a worker. It takes the parsing off the main thread, but it then
 * runs beside the page's frames: on two cores (the dashboard beside the demo's databases and
 * server) it brought more long frames and, at 1,000 cell updates a second, no better frame times
 * (README, "Re-measured"), so the worker is used from four cores up.
 */
function socketInWorker(): boolean {
  const forced = window.localStorage.getItem(LIVE_SOCKET_KEY);
  if (forced === "worker" || forced === "page") return forced === "worker";
  return typeof Worker === "function" && (navigator.hardwareConcurrency ?? 1) >= 4;
}

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
  const options = {
    url: socketUrl(),
    token: session.token,
    expiresAt: session.expiresAt,
    frames,
    onAuthLost: (reason: AuthLoss) => redirectToSignIn(reason),
  };
  const client: LiveConnection = socketInWorker()
    ? new WorkerConnection(new Worker(new URL("./socket.worker.ts", import.meta.url), { type: "module", name: "opslive-live" }), options)
    : new LiveClient(options);
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
