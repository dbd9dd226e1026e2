// Loads the signed-in role's SDL per token and shares it: the nav and every page ask here.
// The SDL changes while the server runs — a table still in its first snapshot is not in it yet,
// a policy edit reloads live — so it is fetched again every little while (and at once when the
// live connection comes back); the parsed schema is replaced only when the text changed, so the
// documents pages prune against it, and the subscriptions keyed by them, stay put. A failed load
// (the server starting, restarting, unreachable) is tried again with backoff.
"use client";
import { useSyncExternalStore } from "react";
import type { Session } from "@/lib/auth/token";
import { redirectToSignIn } from "@/lib/auth/signInRedirect";
import { backoffDelay } from "@/lib/live/backoff";
import { parseRoleSchema, type RoleSchema } from "./roleSchema";

export type RoleSchemaState =
  | { readonly status: "loading" }
  | { readonly status: "ready"; readonly schema: RoleSchema }
  | { readonly status: "error"; readonly error: string };

/** How often a loaded schema is checked for changes (ms). */
const REFRESH_MS = 10_000;

interface Entry {
  state: RoleSchemaState;
  sdl: string | null;
  failures: number;
  timer: ReturnType<typeof setTimeout> | null;
}

const LOADING: RoleSchemaState = { status: "loading" };
const entries = new Map<string, Entry>();
const listeners = new Set<() => void>();

function announce(): void {
  for (const listener of [...listeners]) listener();
}

function schedule(token: string, entry: Entry, delay: number): void {
  if (entry.timer) clearTimeout(entry.timer);
  entry.timer = setTimeout(() => {
    entry.timer = null;
    // Only while someone shows it, and only for the token still in use.
    if (listeners.size > 0 && entries.get(token) === entry) void load(token, entry);
  }, delay);
}

async function load(token: string, entry: Entry): Promise<void> {
  try {
    const response = await fetch("/graphql/schema.graphql", { headers: { Authorization: `Bearer ${token}` } });
    if (response.status === 401 || response.status === 403) {
      redirectToSignIn("refused");
      return;
    }
    if (!response.ok) throw new Error(`the schema answered ${response.status}`);
    const sdl = await response.text();
    entry.failures = 0;
    if (sdl !== entry.sdl) {
      entry.sdl = sdl;
      entry.state = { status: "ready", schema: parseRoleSchema(sdl) };
      announce();
    }
    schedule(token, entry, REFRESH_MS);
  } catch (error) {
    // A schema already loaded stays in use; only a first load shows the error.
    if (entry.state.status !== "ready") {
      entry.state = { status: "error", error: error instanceof Error ? error.message : String(error) };
      announce();
    }
    schedule(token, entry, backoffDelay(entry.failures++));
  }
}

/** Fetches the schemas in use again now (the live connection came back: the server may have changed). */
export function refreshRoleSchemas(): void {
  for (const [token, entry] of entries) void load(token, entry);
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

export function useRoleSchema(session: Session | null): RoleSchemaState {
  return useSyncExternalStore(
    subscribe,
    () => {
      if (!session) return LOADING;
      const existing = entries.get(session.token);
      if (existing) return existing.state;
      // One token at a time: a new sign-in forgets the previous one's schema.
      for (const old of entries.values()) if (old.timer) clearTimeout(old.timer);
      entries.clear();
      const entry: Entry = { state: LOADING, sdl: null, failures: 0, timer: null };
      entries.set(session.token, entry);
      void load(session.token, entry);
      return LOADING;
    },
    () => LOADING,
  );
}
