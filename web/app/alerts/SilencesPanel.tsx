// Silences: label matchers and a time range during which matching alerts are not notified (they
// are still evaluated and shown). Listed with who made them; created and expired here.
"use client";
import { useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { useOneShot } from "@/lib/http/useOneShot";
import { CreateSilence, ExpireSilence, Silences } from "./documents";
import { parseMatchers } from "./silenceMatchers";

export function SilencesPanel({ token, canManage }: { token: string; canManage: boolean }) {
  const silences = useOneShot(token, Silences);
  const [matchers, setMatchers] = useState("");
  const [duration, setDuration] = useState("PT2H");
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  const create = async () => {
    const parsed = parseMatchers(matchers);
    if (!parsed) return setError("Matchers are `label=value` or `label!=value`, separated by commas.");
    try {
      await graphqlRequest(token, CreateSilence, { matchers: parsed, duration, comment: comment || null });
      setMatchers("");
      setComment("");
      setError(null);
      silences.reload();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  const expire = async (id: string) => {
    try {
      await graphqlRequest(token, ExpireSilence, { id });
      silences.reload();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  const now = Date.now();
  return (
    <div>
      {canManage ? (
        <p className="toolbar">
          <input aria-label="Matchers" placeholder="team=ops, severity!=info" value={matchers} onChange={(e) => setMatchers(e.target.value)} />
          <input aria-label="Duration" value={duration} onChange={(e) => setDuration(e.target.value)} style={{ width: 70 }} />
          <input aria-label="Comment" placeholder="comment" value={comment} onChange={(e) => setComment(e.target.value)} />
          <button type="button" onClick={() => void create()}>
            Silence
          </button>
        </p>
      ) : null}
      {silences.error || error ? <p className="error">{error ?? silences.error}</p> : null}
      <table className="grid-table" aria-label="Silences">
        <tbody>
          {(silences.data?.silences ?? []).map((s) => {
            const active = Date.parse(s.startsAt) <= now && now < Date.parse(s.endsAt);
            return (
              <tr key={s.id} className={active ? undefined : "muted"}>
                <td>
                  <code>{s.matchers.map((m) => `${m.label}${m.negated ? "!=" : "="}${m.value}`).join(", ")}</code>
                </td>
                <td className="small">
                  {new Date(s.startsAt).toLocaleString()} → {new Date(s.endsAt).toLocaleString()}
                </td>
                <td className="small">
                  {s.comment ?? ""} <span className="muted">{s.createdBy ?? ""}</span>
                </td>
                <td>
                  {canManage && active ? (
                    <button type="button" onClick={() => void expire(s.id)}>
                      Expire
                    </button>
                  ) : active ? "active" : "ended"}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {silences.data && silences.data.silences.length === 0 ? <p className="muted">No silences.</p> : null}
    </div>
  );
}
