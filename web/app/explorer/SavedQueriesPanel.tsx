// The Explorer's saved queries, beside GraphiQL (rendered inside it, so GraphiQL's store is at
// hand): the user's queries by name with when each was saved; Save keeps the active tab's query
// and variables under a name (proposing the one opened in that tab), Open puts one in a tab (the
// tab already holding it, else a new one), Delete asks first. Server refusals are shown as sent.
// A token without a `sub` has nobody to keep queries for: the panel says so instead.
"use client";
import { useGraphiQL, useGraphiQLActions } from "@graphiql/react";
import { useEffect, useRef, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useOneShot } from "@/lib/http/useOneShot";
import { DeleteSavedQuery, SaveQuery, SavedQueries, type SavedQuery } from "./documents";
import { parseVariables, proposedName, tabHolding, variablesText } from "./savedQueries";

export interface SavedQueriesAbilities {
  readonly save: boolean;
  readonly remove: boolean;
}

export function SavedQueriesPanel({ token, sub, can }: { token: string; sub: string; can: SavedQueriesAbilities }) {
  const saved = useOneShot(token, sub === "" ? null : SavedQueries);
  const { queryEditor, variableEditor, tabs, activeTabId } = useGraphiQL((s) => ({
    queryEditor: s.queryEditor,
    variableEditor: s.variableEditor,
    tabs: s.tabs,
    activeTabId: s.tabs[s.activeTabIndex]?.id ?? null,
  }));
  const { addTab, changeTab } = useGraphiQLActions();
  /** Which saved query each tab holds (by GraphiQL's tab id), so Save proposes its name. */
  const [opened, setOpened] = useState<ReadonlyMap<string, string>>(new Map());
  /** A query just opened in a tab GraphiQL is still creating: named once the tab is active. */
  const pending = useRef<string | null>(null);
  /** The name being typed; null while the form is closed. */
  const [name, setName] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const list = saved.data?.savedQueries ?? [];

  useEffect(() => {
    if (pending.current === null || activeTabId === null) return;
    const named = pending.current;
    pending.current = null;
    setOpened((current) => new Map(current).set(activeTabId, named));
  }, [activeTabId]);

  const startSave = () => {
    setError(null);
    setName(proposedName(activeTabId === null ? undefined : opened.get(activeTabId), list, queryEditor?.getValue() ?? ""));
  };

  const save = async (chosen: string) => {
    const variables = parseVariables(variableEditor?.getValue() ?? "");
    if (!variables.ok) {
      setError(variables.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const { saveQuery } = await graphqlRequest(token, SaveQuery, { name: chosen, query: queryEditor?.getValue() ?? "", variables: variables.value });
      if (activeTabId !== null) setOpened((current) => new Map(current).set(activeTabId, saveQuery.name));
      setName(null);
      saved.reload();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const open = (query: SavedQuery) => {
    setError(null);
    const at = tabHolding(tabs, query.query);
    if (at >= 0) {
      pending.current = query.name;
      changeTab(at);
      // Already the active tab: no change of tab to wait for.
      if (tabs[at]?.id === activeTabId && activeTabId !== null) {
        pending.current = null;
        setOpened((current) => new Map(current).set(activeTabId, query.name));
      }
      return;
    }
    pending.current = query.name;
    addTab();
    queryEditor?.setValue(query.query);
    variableEditor?.setValue(variablesText(query.variables));
  };

  const remove = async (query: SavedQuery) => {
    if (!window.confirm(`Delete the saved query “${query.name}”?`)) return;
    setError(null);
    try {
      await graphqlRequest(token, DeleteSavedQuery, { id: query.id });
      setOpened((current) => new Map([...current].filter(([, n]) => n !== query.name)));
      saved.reload();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  if (sub === "")
    return (
      <aside className="saved-queries" aria-labelledby="saved-queries-title" aria-busy={false}>
        <h2 id="saved-queries-title">Saved queries</h2>
        <p className="panel-note">Saved queries are kept per user: sign in with a token that has a `sub` to keep yours.</p>
      </aside>
    );
  return (
    <aside className="saved-queries" aria-labelledby="saved-queries-title" aria-busy={!saved.data && !saved.error}>
      <h2 id="saved-queries-title">Saved queries</h2>
      {can.save ? (
        name === null ? (
          <p className="toolbar">
            <button type="button" onClick={startSave} disabled={!queryEditor}>
              Save
            </button>
            <span className="muted small">the active tab’s query and variables</span>
          </p>
        ) : (
          <form
            className="saved-queries-form"
            onSubmit={(e) => {
              e.preventDefault();
              void save(name);
            }}
          >
            <label>
              Name <input aria-label="Saved query name" value={name} onChange={(e) => setName(e.target.value)} maxLength={100} autoFocus />
            </label>
            <span className="toolbar">
              <button type="submit" disabled={busy || name.trim() === ""}>
                Save query
              </button>
              <button type="button" disabled={busy} onClick={() => setName(null)}>
                Cancel
              </button>
            </span>
          </form>
        )
      ) : null}
      {error ? (
        <p className="error" role="alert">
          {error}
        </p>
      ) : null}
      {saved.error ? <p className="error">{saved.error}</p> : null}
      {!saved.data && !saved.error ? <p className="muted">Loading…</p> : null}
      {saved.data && list.length === 0 ? <p className="muted small">None yet: Save keeps the active tab for you.</p> : null}
      <ul aria-label="Saved queries">
        {list.map((query) => (
          <li key={query.id} data-name={query.name}>
            <span className="saved-query-name" title={query.name}>
              {query.name}
            </span>
            <span className="muted small">{new Date(query.updatedAt).toLocaleString()}</span>
            <span className="toolbar">
              <button type="button" aria-label={`Open ${query.name}`} onClick={() => open(query)}>
                Open
              </button>
              {can.remove ? (
                <button type="button" aria-label={`Delete ${query.name}`} onClick={() => void remove(query)}>
                  Delete
                </button>
              ) : null}
            </span>
          </li>
        ))}
      </ul>
    </aside>
  );
}
