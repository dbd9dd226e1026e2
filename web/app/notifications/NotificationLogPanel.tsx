// The notification log, newest first: every notification the outbox holds with its status,
// attempts, repeats after a restart, and why it failed or was not sent. Narrowed by status or
// contact point; read again every few seconds while the page is open.
"use client";
import { useEffect, useState } from "react";
import { useOneShot } from "@/lib/http/useOneShot";
import { NotificationLog, type ContactPoint, type LogEntry } from "./documents";

const STATUSES = ["PENDING", "SENDING", "SENT", "DEAD", "SILENCED", "MUTED"] as const;
type Status = (typeof STATUSES)[number];

export function NotificationLogPanel({ token, points }: { token: string; points: readonly ContactPoint[] }) {
  const [status, setStatus] = useState<Status | "">("");
  const [contactPointId, setContactPointId] = useState("");
  const where = { ...(status ? { status } : {}), ...(contactPointId ? { contactPointId } : {}) };
  const log = useOneShot(token, NotificationLog, { where, limit: 200 });
  const { reload } = log;
  useEffect(() => {
    const every = window.setInterval(reload, 3000);
    return () => window.clearInterval(every);
  }, [reload]);
  const name = (id: string) => points.find((p) => p.id === id)?.name ?? `#${id}`;
  const rows = log.data?.notifications ?? [];
  return (
    <div>
      <p className="toolbar">
        <select aria-label="Status" value={status} onChange={(e) => setStatus(e.target.value as Status | "")}>
          <option value="">every status</option>
          {STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <select aria-label="Contact point" value={contactPointId} onChange={(e) => setContactPointId(e.target.value)}>
          <option value="">every contact point</option>
          {points.map((p) => (
            <option key={p.id} value={p.id}>
              {p.name}
            </option>
          ))}
        </select>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </p>
      {log.error ? <p className="error">{log.error}</p> : null}
      <table className="grid-table" aria-label="Notification log">
        <thead>
          <tr>
            <th>Written</th>
            <th>To</th>
            <th>Alert</th>
            <th>Status</th>
            <th>Attempts</th>
            <th>Why</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((n) => (
            <LogRow key={n.id} entry={n} to={name(n.contactPointId)} />
          ))}
        </tbody>
      </table>
      {log.data && rows.length === 0 ? <p className="muted">Nothing here yet.</p> : null}
    </div>
  );
}

function LogRow({ entry: n, to }: { entry: LogEntry; to: string }) {
  const content = n.content as { rule?: string; summary?: string; reminder?: number };
  return (
    <tr data-status={n.status}>
      <td className="small">{new Date(n.createdAt).toLocaleString()}</td>
      <td>{to}</td>
      <td className="small">
        <strong>{content.rule ?? ""}</strong> {n.kind}
        {content.reminder ? ` (reminder ${content.reminder})` : ""}
        <div className="muted">{content.summary ?? ""}</div>
      </td>
      <td>
        {n.status.toLowerCase()}
        {n.sentAt ? <div className="small muted">{new Date(n.sentAt).toLocaleTimeString()}</div> : null}
      </td>
      <td>
        {n.attempts}
        {n.repeats ? <span className="small muted"> ({n.repeats} after restart)</span> : null}
      </td>
      <td className="small">{n.note ?? n.lastError ?? ""}</td>
    </tr>
  );
}
