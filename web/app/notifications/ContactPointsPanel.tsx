// Contact points: where notifications go. Listed with what may be shown (secrets never come
// back); added, edited (a secret left blank keeps its value), tested and deleted here.
"use client";
import { useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { attempt, errorText } from "@/lib/http/attempt";
import type { OneShot } from "@/lib/http/useOneShot";
import type { ResultOf } from "@/lib/graphql/graphql";
import { CreateContactPoint, DeleteContactPoint, TestContactPoint, UpdateContactPoint, type ContactPoint, type ContactPoints } from "./documents";
import { FIELDS, KINDS, describeSettings, formFromSettings, settingsFromForm, type ContactKind } from "./policyModel";

type Editing = { id: string | null; name: string; kind: ContactKind; values: Record<string, string> };

export function ContactPointsPanel({ token, points }: { token: string; points: OneShot<ResultOf<typeof ContactPoints>> }) {
  const [editing, setEditing] = useState<Editing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<string, string>>({});
  const run = async (action: () => Promise<unknown>) => {
    const ok = await attempt(action, setError);
    if (ok) points.reload();
    return ok;
  };
  const save = async (e: Editing) => {
    const input = { name: e.name, kind: e.kind, settings: settingsFromForm(e.kind, e.values) };
    const ok = await run(() => (e.id ? graphqlRequest(token, UpdateContactPoint, { id: e.id, input }) : graphqlRequest(token, CreateContactPoint, { input })));
    if (ok) setEditing(null);
  };
  const test = async (p: ContactPoint) => {
    setTests((t) => ({ ...t, [p.id]: "sending…" }));
    try {
      const { testContactPoint: r } = await graphqlRequest(token, TestContactPoint, { id: p.id });
      setTests((t) => ({ ...t, [p.id]: r.ok ? "delivered" : `${r.temporary ? "failed for now" : "refused"}: ${r.error ?? ""}` }));
    } catch (e) {
      setTests((t) => ({ ...t, [p.id]: errorText(e) }));
    }
  };
  const list = points.data?.contactPoints ?? [];
  return (
    <div>
      <p className="toolbar">
        <button type="button" onClick={() => setEditing({ id: null, name: "", kind: "SLACK", values: { security: "starttls" } })}>
          New contact point
        </button>
      </p>
      {error || points.error ? (
        <p className="error" role="alert">
          {error ?? points.error}
        </p>
      ) : null}
      {editing ? <ContactPointForm editing={editing} onChange={setEditing} onSave={() => void save(editing)} onCancel={() => setEditing(null)} /> : null}
      <table className="grid-table" aria-label="Contact points">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Reaches</th>
            <th>Changed</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.map((p) => (
            <tr key={p.id}>
              <td>
                {p.name} <span className="muted small">#{p.id}</span>
              </td>
              <td>{p.kind.toLowerCase()}</td>
              <td className="small">
                {describeSettings(p.kind, p.settings as Record<string, unknown>)}
                {p.secretsSet ? <span className="muted"> · secrets set</span> : null}
                {tests[p.id] ? <div role="status">Test: {tests[p.id]}</div> : null}
              </td>
              <td className="small muted">
                {p.updatedBy ?? ""} {new Date(p.updatedAt).toLocaleString()}
              </td>
              <td className="toolbar">
                <button type="button" onClick={() => void test(p)}>
                  Test
                </button>
                <button
                  type="button"
                  onClick={() => setEditing({ id: p.id, name: p.name, kind: p.kind as ContactKind, values: formFromSettings(p.kind as ContactKind, p.settings as Record<string, unknown>) })}
                >
                  Edit
                </button>
                <button type="button" onClick={() => void run(() => graphqlRequest(token, DeleteContactPoint, { id: p.id }))}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {points.data && list.length === 0 ? <p className="muted">No contact points yet: nothing is sent.</p> : null}
    </div>
  );
}

function ContactPointForm({ editing, onChange, onSave, onCancel }: { editing: Editing; onChange: (e: Editing) => void; onSave: () => void; onCancel: () => void }) {
  const set = (key: string, value: string) => onChange({ ...editing, values: { ...editing.values, [key]: value } });
  return (
    <form
      aria-label={editing.id ? "Edit contact point" : "New contact point"}
      className="panel"
      style={{ display: "grid", gap: 6, marginBottom: 12 }}
      onSubmit={(e) => {
        e.preventDefault();
        onSave();
      }}
    >
      <label>
        Name <input value={editing.name} onChange={(e) => onChange({ ...editing, name: e.target.value })} required />
      </label>
      <label>
        Kind{" "}
        <select value={editing.kind} disabled={editing.id !== null} onChange={(e) => onChange({ ...editing, kind: e.target.value as ContactKind })}>
          {KINDS.map((k) => (
            <option key={k} value={k}>
              {k.toLowerCase()}
            </option>
          ))}
        </select>
      </label>
      {FIELDS[editing.kind].map((field) => (
        <label key={field.key}>
          {field.label}
          {field.optional ? <span className="muted"> (optional)</span> : null}{" "}
          {field.choices ? (
            <select value={editing.values[field.key] ?? field.choices[0]} onChange={(e) => set(field.key, e.target.value)}>
              {field.choices.map((c) => (
                <option key={c}>{c}</option>
              ))}
            </select>
          ) : field.list || field.key === "caCertificate" ? (
            <textarea rows={2} value={editing.values[field.key] ?? ""} placeholder={field.placeholder} onChange={(e) => set(field.key, e.target.value)} style={{ width: "100%" }} />
          ) : (
            <input
              type={field.secret ? "password" : "text"}
              autoComplete="off"
              value={editing.values[field.key] ?? ""}
              placeholder={field.secret && editing.id ? "(unchanged)" : field.placeholder}
              onChange={(e) => set(field.key, e.target.value)}
              style={{ width: "100%" }}
            />
          )}
        </label>
      ))}
      <p className="toolbar">
        <button type="submit">{editing.id ? "Save" : "Add"}</button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </p>
    </form>
  );
}
