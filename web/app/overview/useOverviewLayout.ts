// The signed-in user's tile layout for the Overview: loaded once (`overviewLayout`), replaced by
// what `saveOverviewLayout` answers. A role whose schema lacks the fields (a server without an
// app database) and a token without a `sub` (nobody to keep a layout for: the server refuses)
// get the server's order and no Arrange; a load that fails shows the server's order with the error.
"use client";
import { useCallback, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useOneShot } from "@/lib/http/useOneShot";
import { canMutate, canQuery, type RoleSchema } from "@/lib/schema/roleSchema";
import { OverviewLayoutQuery, SaveOverviewLayout, type SavedLayout } from "./documents";
import type { Layout } from "./layout";

export interface OverviewLayoutState {
  /** Still waiting for the schema or the layout: tiles would jump once it arrives. */
  readonly loading: boolean;
  /** The saved layout; null without one (no such field, or it failed to load). */
  readonly layout: SavedLayout | null;
  readonly error: string | null;
  /** Whether this user can save a layout (the field exists and the layout loaded). */
  readonly canSave: boolean;
  /** Saves, and uses the answer from then on; rejects with the server's message. */
  readonly save: (layout: Layout) => Promise<void>;
}

export function useOverviewLayout(token: string, sub: string, schema: RoleSchema | null): OverviewLayoutState {
  const readable = sub !== "" && schema !== null && canQuery(schema, "overviewLayout");
  const loaded = useOneShot(token, readable ? OverviewLayoutQuery : null);
  const [saved, setSaved] = useState<SavedLayout | null>(null);
  const save = useCallback(
    async (layout: Layout) => {
      const answer = await graphqlRequest(token, SaveOverviewLayout, { tiles: [...layout.tiles], hidden: [...layout.hidden] });
      setSaved(answer.saveOverviewLayout);
    },
    [token],
  );
  const layout = saved ?? loaded.data?.overviewLayout ?? null;
  return {
    loading: schema === null || (readable && layout === null && loaded.error === null),
    layout,
    error: layout ? null : loaded.error,
    canSave: layout !== null && schema !== null && canMutate(schema, "saveOverviewLayout"),
    save,
  };
}
