// The rule editor: a rule's definition as JSON in the shape of `AlertRuleInput` (the server checks
// it like any mutation and names the field at fault), for a new rule or one being changed.
// Templates give the two kinds a starting point.
"use client";
import { useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import type { VariablesOf } from "@/lib/graphql/graphql";
import { CreateRule, UpdateRule, type Rule } from "./documents";

type RuleInput = VariablesOf<typeof CreateRule>["input"];

const TEMPLATES: Record<string, object> = {
  "KPI threshold": { name: "", severity: "WARNING", labels: { team: "ops" }, kpi: { kpi: "<KPI id>", above: 100 }, for: "PT1M", summary: "{{value}} ({{threshold}})" },
  "Each row matching": { name: "", severity: "WARNING", labels: {}, rows: { table: "inventory", filter: { onHand: { lt: { column: "reorderPoint" } } }, labelColumns: ["sku", "warehouseId"] }, summary: "{{sku}} in {{warehouseId}}" },
};

export function RuleEditor({ token, rule, onSaved, onCancel }: { token: string; rule: Rule | null; onSaved: () => void; onCancel: () => void }) {
  const [text, setText] = useState(() => JSON.stringify(rule ? rule.definition : TEMPLATES["KPI threshold"], null, 2));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async () => {
    let input: RuleInput;
    try {
      input = JSON.parse(text) as RuleInput;
    } catch (e) {
      setError(`Not JSON: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    setBusy(true);
    try {
      if (rule) await graphqlRequest(token, UpdateRule, { id: rule.id, input });
      else await graphqlRequest(token, CreateRule, { input });
      setError(null);
      onSaved();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="panel" aria-label={rule ? `Edit rule ${rule.name}` : "New rule"}>
      <h2>{rule ? `Edit “${rule.name}”` : "New rule"}</h2>
      {!rule ? (
        <p className="toolbar">
          {Object.keys(TEMPLATES).map((name) => (
            <button key={name} type="button" onClick={() => setText(JSON.stringify(TEMPLATES[name], null, 2))}>
              {name}
            </button>
          ))}
        </p>
      ) : null}
      <textarea aria-label="Rule definition (JSON)" value={text} onChange={(e) => setText(e.target.value)} rows={14} style={{ width: "100%", fontFamily: "ui-monospace, monospace" }} />
      {error ? <p className="error" role="alert">{error}</p> : null}
      <p className="toolbar">
        <button type="button" disabled={busy} onClick={() => void save()}>
          {rule ? "Save" : "Create"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </p>
    </div>
  );
}
