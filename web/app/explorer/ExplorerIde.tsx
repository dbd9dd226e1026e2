// GraphiQL with the saved-queries panel beside it. One module, loaded only in the browser (see
// ExplorerView): both GraphiQL and the panel, which reads and fills GraphiQL's editors through
// its store, need Monaco, so the panel is a child of GraphiQL (inside its provider).
"use client";
import { GraphiQL } from "graphiql";
import type { Fetcher } from "@graphiql/toolkit";
import { SavedQueriesPanel, type SavedQueriesAbilities } from "./SavedQueriesPanel";

export interface ExplorerIdeProps {
  readonly fetcher: Fetcher;
  /** GraphiQL's tabs when it has none stored (the same array on every render). */
  readonly tabs: { query: string }[];
  readonly token: string;
  /** The token's `sub` ("" without one): whose saved queries these are. */
  readonly sub: string;
  /** What the role's schema offers of saved queries; null hides the panel. */
  readonly saved: SavedQueriesAbilities | null;
}

export function ExplorerIde({ fetcher, tabs, token, sub, saved }: ExplorerIdeProps) {
  return (
    <GraphiQL fetcher={fetcher} defaultTabs={tabs} shouldPersistHeaders={false}>
      {saved ? <SavedQueriesPanel token={token} sub={sub} can={saved} /> : null}
    </GraphiQL>
  );
}
