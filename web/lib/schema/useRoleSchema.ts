// Loads the signed-in role's SDL once per token and shares it: the nav and every page ask here.
// A failed load (the server starting, restarting, or unreachable) is tried again with backoff,
// so the navigation fills in once the server answers instead of staying empty.
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

const LOADING: RoleSchemaState = { status: "loading" };
const states = new Map<string, RoleSchemaState>();
const listeners = new Set<() => void>();
const failures = new Map<string, number>();

async function load(token: string): Promise<void> {
  try {
    const response = await fetch("/graphql/schema.graphql", { headers: { Authorization: `Bearer ${token}` } });
    if (response.status === 401 || response.status === 403) {
      redirectToSignIn("refused");
      return;
    }
    if (!response.ok) throw new Error(`the schema answered ${response.status}`);
    states.set(token, { status: "ready", schema: parseRoleSchema(await response.text()) });
    failures.delete(token);
  } catch (error) {
    states.set(token, { status: "error", error: error instanceof Error ? error.message : String(error) });
    const attempt = failures.get(token) ?? 0;
    failures.set(token, attempt + 1);
    setTimeout(() => {
      if (states.get(token)?.status === "error") void load(token);
    }, backoffDelay(attempt));
  }
  for (const listener of [...listeners]) listener();
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
      const state = states.get(session.token);
      if (state) return state;
      states.set(session.token, LOADING);
      void load(session.token);
      return LOADING;
    },
    () => LOADING,
  );
}
