// What the saved-queries panel decides without GraphiQL, kept pure for tests: the variables
// editor's text as the JSON to save (empty means none), a saved query's variables as editor text,
// the name a Save proposes, and the tab that already holds a query.

export type ParsedVariables = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

/** The variables editor's text as JSON: null when blank; an error when it does not parse. */
export function parseVariables(text: string): ParsedVariables {
  if (text.trim() === "") return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, error: `the variables are not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
}

/** A saved query's variables as the variables editor shows them. */
export function variablesText(variables: unknown): string {
  return variables === null || variables === undefined ? "" : JSON.stringify(variables, null, 2);
}

/**
 * The name Save proposes: the saved query opened in this tab, else the saved query whose text is
 * the editor's, else none.
 */
export function proposedName(openedName: string | undefined, saved: readonly { readonly name: string; readonly query: string }[], query: string): string {
  return openedName ?? saved.find((q) => q.query === query)?.name ?? "";
}

/** The index of a tab holding exactly this query, or -1. */
export function tabHolding(tabs: readonly { readonly query: string | null }[], query: string): number {
  return tabs.findIndex((t) => t.query === query);
}
