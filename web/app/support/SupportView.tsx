// The Support page: open tickets per queue and priority, the tickets waiting for a first response
// and how long (median and longest, per queue), agents per queue and availability, and the KPIs
// over tickets the role may read (the demo's first-response-time p90 among them). All live; the
// waits also tick with the clock between transactions.
"use client";
import { useEffect, useState } from "react";
import { useLiveResult } from "@/lib/live/hooks";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { AgentAvailability, OpenTickets, TicketKpis, WaitingForResponse } from "./documents";
import { CountMatrix } from "./CountMatrix";
import { matrix, waitSince } from "./supportMath";

const PRIORITIES = ["urgent", "high", "normal", "low"];
const AVAILABILITY = ["online", "away", "offline"];

export function SupportView() {
  const { session, store, schema } = useLiveContext();
  const open = useLiveResult(store, usePrunedDocument(OpenTickets, schema).document);
  const waiting = useLiveResult(store, usePrunedDocument(WaitingForResponse, schema).document);
  const agentsDocument = usePrunedDocument(AgentAvailability, schema).document;
  const agents = useLiveResult(store, agentsDocument);
  const kpis = useLiveResult(store, usePrunedDocument(TicketKpis, schema).document);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  if (!session) return null;
  const ticketKpis = (kpis.data?.kpis ?? []).filter((k) => k.table === "tickets" || k.table === "agents");
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>Support</h1>
      <div className="grid-2">
        <section className="panel" aria-labelledby="open-title">
          <h2 id="open-title">Open tickets · queue × priority</h2>
          {open.error ? <p className="error">{open.error}</p> : null}
          {open.data ? <CountMatrix label="Open tickets per queue and priority" rowHeader="queue" matrix={matrix(open.data.ticketsAggregate.map((g) => ({ row: g.key.queue ?? "?", column: g.key.priority ?? "?", count: g.count })), PRIORITIES)} /> : <p className="muted">Loading…</p>}
        </section>
        <section className="panel" aria-labelledby="agents-title">
          <h2 id="agents-title">Agents · queue × availability</h2>
          {agents.error ? <p className="error">{agents.error}</p> : null}
          {agents.data ? <CountMatrix label="Agents per queue and availability" rowHeader="queue" matrix={matrix(agents.data.agentsAggregate.map((g) => ({ row: g.key.queue ?? "?", column: g.key.availability ?? "?", count: g.count })), AVAILABILITY)} /> : schema && !agentsDocument ? <p className="panel-note">Your role cannot see agents.</p> : <p className="muted">Loading…</p>}
        </section>
      </div>
      <section className="panel" aria-labelledby="wait-title">
        <h2 id="wait-title">Waiting for a first response</h2>
        {waiting.error ? <p className="error">{waiting.error}</p> : null}
        <table className="grid-table live-value" aria-label="Tickets waiting for a first response">
          <thead>
            <tr>
              <th>Queue</th>
              <th>Waiting</th>
              <th>Median wait</th>
              <th>Longest wait</th>
            </tr>
          </thead>
          <tbody>
            {(waiting.data?.ticketsAggregate ?? [])
              .slice()
              .sort((a, b) => (a.key.queue ?? "").localeCompare(b.key.queue ?? ""))
              .map((g) => (
                <tr key={g.key.queue ?? "?"}>
                  <td>{g.key.queue}</td>
                  <td className="num">{g.count}</td>
                  <td className="num">{waitSince(g.p50.openedAt ?? null, now)}</td>
                  <td className="num">{waitSince(g.min.openedAt ?? null, now)}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </section>
      {ticketKpis.length > 0 ? (
        <section className="panel" aria-labelledby="support-kpis-title">
          <h2 id="support-kpis-title">Ticket KPIs</h2>
          <table className="grid-table live-value">
            <tbody>
              {ticketKpis.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td className="num">
                    {!k.ready ? "not ready" : k.groupBy.length > 0 ? k.groups.map((g) => `${Object.values(g.key as Record<string, unknown>).join("/")} ${shortNumber(g.valueFloat, g.value)}`).join(" · ") : shortNumber(k.valueFloat, k.value)} {k.unit ?? ""}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}
    </>
  );
}

/** A KPI value for reading: integers as they are, others to two decimals; the exact text when there is no float. */
function shortNumber(value: number | null, exact: string | null): string {
  if (value === null) return exact ?? "—";
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
