// What a live page needs: the session, the tab's live store, and the role's schema (to fit its
// documents and to say what the role cannot see).
"use client";
import { useHydrated, useSession } from "@/lib/auth/useSession";
import type { Session } from "@/lib/auth/token";
import type { RoleSchema } from "@/lib/schema/roleSchema";
import { useRoleSchema } from "@/lib/schema/useRoleSchema";
import { liveRuntime } from "./runtime";
import type { LiveStore } from "./store";

export interface LiveContext {
  readonly session: Session | null;
  readonly store: LiveStore | null;
  readonly schema: RoleSchema | null;
}

export function useLiveContext(): LiveContext {
  const hydrated = useHydrated();
  const session = useSession();
  const schemaState = useRoleSchema(session);
  const store = hydrated && session ? (liveRuntime()?.store ?? null) : null;
  return { session, store, schema: schemaState.status === "ready" ? schemaState.schema : null };
}
