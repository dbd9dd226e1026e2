// A page's document fitted to the signed-in role's schema, computed once per (document, schema):
// the live store keys subscriptions by query text, so a stable pruned document means a stable
// subscription. Null until the schema is known, or when nothing of the document remains.
"use client";
import { useMemo } from "react";
import type { DocumentNode } from "@0no-co/graphql.web";
import type { RoleSchema } from "./roleSchema";
import { pruneDocument, type PrunedDocument } from "./prune";

const EMPTY: PrunedDocument<never> = { document: null, missing: [] };

export function usePrunedDocument<D extends DocumentNode>(document: D, schema: RoleSchema | null): PrunedDocument<D> {
  return useMemo(() => (schema ? pruneDocument(document, schema) : (EMPTY as PrunedDocument<D>)), [document, schema]);
}
