// The session as React state: read from sessionStorage on the client (null while the static
// page hydrates, so server and client markup agree), re-read when sign-in or sign-out says so.
"use client";
import { useSyncExternalStore } from "react";
import { loadSession, type Session } from "./token";

const listeners = new Set<() => void>();
let cached: Session | null = null;

function read(): Session | null {
  const session = loadSession();
  if (session?.token !== cached?.token) cached = session;
  return cached;
}

/** Tells readers that the stored token changed (after sign-in or sign-out). */
export function sessionChanged(): void {
  for (const listener of [...listeners]) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, read, () => null);
}

/** False during the server render and hydration, true once the browser has taken over. */
export function useHydrated(): boolean {
  return useSyncExternalStore(
    () => () => {},
    () => true,
    () => false,
  );
}
