// Alert history: recorded transitions (newest first) with their provenance and, for row rules,
// the row before and after (limited to the columns the rule reads). Not live: Refresh reloads.
"use client";
import { useMemo } from "react";
import { useOneShot } from "@/lib/http/useOneShot";
import { AlertHistory } from "./documents";
import { Provenance } from "./AlertInstances";

export function AlertHistoryPanel({ token, ruleId }: { token: string; ruleId: string | null }) {
  const variables = useMemo(() => ({ ruleId, limit: 100 }), [ruleId]);
  const history = useOneShot(token, AlertHistory, variables);
  return (
    <div>
      <p className="toolbar">
        <button type="button" onClick={history.reload}>
          Refresh
        </button>
        <span className="muted">the latest 100 transitions{ruleId ? " of this rule" : ""}</span>
      </p>
      {history.error ? <p className="error">{history.error}</p> : null}
      <table className="grid-table" aria-label="Alert history">
        <tbody>
          {(history.data?.alertHistory ?? []).map((t) => (
            <tr key={t.id}>
              <td className="small">{new Date(t.at).toLocaleString()}</td>
              <td>
                <span className="badge">
                  {t.from.toLowerCase()} → {t.to.toLowerCase()}
                </span>
              </td>
              <td>
                {t.summary} {t.instance ? <code className="muted">{t.instance}</code> : null}
                {t.before || t.after ? (
                  <div className="small muted">
                    <code>{JSON.stringify(t.before)}</code> → <code>{JSON.stringify(t.after)}</code>
                  </div>
                ) : null}
              </td>
              <td className="small">
                <Provenance cause={t.cause} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {history.data && history.data.alertHistory.length === 0 ? <p className="muted">No transitions recorded.</p> : null}
    </div>
  );
}
