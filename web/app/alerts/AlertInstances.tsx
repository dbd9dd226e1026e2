// Every alert pending or firing that the role may read, live: state, severity, value, the row (for
// a row rule), and provenance — the source transaction that moved it (source, position, commit
// time) or the time it came due — with acknowledge (and a note) for roles that may.
"use client";
import { useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import { canMutate, type RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { Acknowledge, LiveAlerts, type Instance } from "./documents";

export function AlertInstances({ store, schema, token, ruleId }: { store: LiveStore | null; schema: RoleSchema | null; token: string; ruleId: string | null }) {
  const result = useLiveResult(store, usePrunedDocument(LiveAlerts, schema).document);
  const all = result.data?.alerts ?? [];
  const alerts = ruleId ? all.filter((a) => a.ruleId === ruleId) : all;
  const canAck = schema ? canMutate(schema, "acknowledgeAlert") : false;
  return (
    <div className="live-value">
      {result.error ? <p className="error">{result.error}</p> : null}
      {!result.data ? <p className="muted">Loading…</p> : alerts.length === 0 ? <p className="muted">Nothing pending or firing{ruleId ? " for this rule" : ""}.</p> : null}
      <table className="grid-table" aria-label="Alerts pending or firing">
        <tbody>
          {alerts.map((alert) => (
            <InstanceRow key={`${alert.ruleId}:${alert.instance}`} alert={alert} token={token} canAck={canAck} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function InstanceRow({ alert, token, canAck }: { alert: Instance; token: string; canAck: boolean }) {
  const [note, setNote] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const acknowledge = async () => {
    setBusy(true);
    try {
      await graphqlRequest(token, Acknowledge, { ruleId: alert.ruleId, instance: alert.instance, note: note || null });
      setError(null);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <tr data-state={alert.state} data-rule={alert.ruleName}>
      <td>
        <span className="badge" data-severity={alert.severity}>
          {alert.state.toLowerCase()} · {alert.severity.toLowerCase()}
        </span>
      </td>
      <td>
        <strong>{alert.ruleName}</strong> {alert.instance ? <code className="muted">{alert.instance}</code> : null}
        <div>{alert.summary}</div>
        {alert.row ? <code className="muted small">{JSON.stringify(alert.row)}</code> : null}
      </td>
      <td className="small">
        <div>value {alert.value ?? "—"}</div>
        <div className="muted">since {new Date(alert.since).toLocaleTimeString()}</div>
      </td>
      <td className="small" data-testid="provenance">
        {alert.cause ? <Provenance cause={alert.cause} /> : <span className="muted">restored after a restart</span>}
        {alert.silenced ? <div className="muted">silenced</div> : null}
      </td>
      <td className="small">
        {alert.acknowledged ? (
          <span className="muted">
            acknowledged by {alert.acknowledgedBy ?? "?"} {alert.acknowledgedAt ? `at ${new Date(alert.acknowledgedAt).toLocaleTimeString()}` : ""}
            {alert.acknowledgementNote ? `: ${alert.acknowledgementNote}` : ""}
          </span>
        ) : canAck ? (
          <span className="toolbar">
            <input aria-label="Note" placeholder="note" value={note} onChange={(e) => setNote(e.target.value)} style={{ width: 110 }} />
            <button type="button" disabled={busy} onClick={() => void acknowledge()}>
              Acknowledge
            </button>
          </span>
        ) : null}
        {error ? <div className="error">{error}</div> : null}
      </td>
    </tr>
  );
}

export function Provenance({ cause }: { cause: { source: string | null; position: string | null; commitTs: string | null; dueAt: string | null } }) {
  if (cause.position) {
    return (
      <span>
        {cause.source ?? "source"} at <code>{cause.position}</code>
        {cause.commitTs ? <span className="muted"> · committed {new Date(cause.commitTs).toLocaleTimeString()}</span> : null}
      </span>
    );
  }
  if (cause.dueAt) return <span className="muted">time: due {new Date(cause.dueAt).toLocaleTimeString()}</span>;
  return <span className="muted">—</span>;
}
