// The rule list: every rule the role may read with what it watches, its timings, whether it is
// evaluated (`problem`) and its overflow; choosing one narrows the instances and history. Roles
// that may manage alerts get the editor and delete.
"use client";
import { useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import type { OneShot } from "@/lib/http/useOneShot";
import { DeleteRule, type Rule } from "./documents";
import { RuleEditor } from "./RuleEditor";

export function AlertRulesPanel({ token, rules, canManage, selected, onSelect }: { token: string; rules: OneShot<{ alertRules: readonly Rule[] }>; canManage: boolean; selected: string | null; onSelect: (id: string | null) => void }) {
  const [editing, setEditing] = useState<Rule | "new" | null>(null);
  const [error, setError] = useState<string | null>(null);
  const remove = async (rule: Rule) => {
    if (!window.confirm(`Delete the rule “${rule.name}”, its alerts and its history?`)) return;
    try {
      await graphqlRequest(token, DeleteRule, { id: rule.id });
      if (selected === rule.id) onSelect(null);
      rules.reload();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  const list = rules.data?.alertRules ?? [];
  return (
    <div>
      <p className="toolbar">
        <button type="button" onClick={rules.reload}>
          Refresh
        </button>
        {canManage ? (
          <button type="button" onClick={() => setEditing("new")}>
            New rule
          </button>
        ) : null}
        {selected ? (
          <button type="button" onClick={() => onSelect(null)}>
            Show all rules
          </button>
        ) : null}
      </p>
      {rules.error || error ? <p className="error">{rules.error ?? error}</p> : null}
      {editing ? (
        <RuleEditor
          key={editing === "new" ? "new" : editing.id}
          token={token}
          rule={editing === "new" ? null : editing}
          onCancel={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            rules.reload();
          }}
        />
      ) : null}
      <table className="grid-table" aria-label="Alert rules">
        <thead>
          <tr>
            <th>Rule</th>
            <th>Watches</th>
            <th>For / keep</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.map((rule) => (
            <tr key={rule.id} data-rule={rule.name} aria-selected={selected === rule.id}>
              <td>
                <button type="button" className="link" onClick={() => onSelect(selected === rule.id ? null : rule.id)}>
                  {rule.name}
                </button>{" "}
                <span className="badge">{rule.severity.toLowerCase()}</span>
              </td>
              <td className="small">{rule.kpiId ? `KPI ${rule.kpiId}` : rule.table ? `rows of ${rule.table}` : "—"}</td>
              <td className="small">
                {rule.for ?? "—"} / {rule.keepFiringFor ?? "—"}
              </td>
              <td className="small">
                {rule.problem ? <span className="error">{rule.problem}</span> : <span className="muted">evaluated</span>}
                {rule.overflow != null && rule.overflow > 0 ? (
                  <span className="error"> · {rule.overflow} over the cap of {rule.maxInstances}</span>
                ) : null}
              </td>
              <td>
                {canManage ? (
                  <span className="toolbar">
                    <button type="button" onClick={() => setEditing(rule)}>
                      Edit
                    </button>
                    <button type="button" onClick={() => void remove(rule)}>
                      Delete
                    </button>
                  </span>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rules.data && list.length === 0 ? <p className="muted">No rule your role may read.</p> : null}
    </div>
  );
}
