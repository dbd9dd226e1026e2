// The Status page: readiness and each source's connection (`/readyz`), replication health (the
// built-in KPIs, live), and every watched table — state, rows, position, memory (`/tables`,
// `/metrics`), read again every two seconds. The operations endpoints need no token.
"use client";
import { useEffect, useState } from "react";
import { ReplicationHealth } from "@/app/overview/ReplicationHealth";
import { byLabel, parseMetrics } from "@/lib/http/prometheus";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { bytes } from "@/lib/format/bytes";

interface Readiness {
  readonly ready: boolean;
  readonly sources: readonly { readonly source: string; readonly connected: boolean; readonly consistent: boolean; readonly lag_bytes: number; readonly last_error?: string | null }[];
}

interface TableRow {
  readonly name: string;
  readonly source: string;
  readonly table: string;
  readonly state: string;
  readonly reason?: string;
  readonly rows: number;
  readonly position: string;
}

interface Snapshot {
  readonly readiness: Readiness | null;
  readonly tables: readonly TableRow[];
  readonly memory: ReadonlyMap<string, number>;
}

const POLL_MS = 2_000;

export function StatusView() {
  const { session, store, schema } = useLiveContext();
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    const poll = async () => {
      try {
        const [ready, tables, metrics] = await Promise.all([
          // 503 while not ready still carries the body.
          fetch("/readyz").then((r) => r.json() as Promise<Readiness>),
          fetch("/tables").then((r) => (r.ok ? (r.json() as Promise<TableRow[]>) : Promise.reject(new Error(`/tables answered ${r.status}`)))),
          fetch("/metrics").then((r) => r.text()),
        ]);
        if (cancelled) return;
        setSnapshot({ readiness: ready, tables, memory: byLabel(parseMetrics(metrics), "opslive_replica_memory_bytes", "table") });
        setError(null);
      } catch (e) {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), POLL_MS);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, []);

  const ready = snapshot?.readiness?.ready;
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>
        Status{" "}
        <span className={`badge ${error ? "bad" : ready ? "ok" : "bad"}`} data-testid="readiness">
          {error ? "unreachable" : ready === undefined ? "…" : ready ? "ready" : "not ready"}
        </span>
      </h1>
      {error && <p className="error">{error}</p>}
      <section className="panel" aria-labelledby="sources-title">
        <h2 id="sources-title">Sources</h2>
        <table className={`grid-table${error ? " stale" : ""}`} aria-label="Sources">
          <thead>
            <tr>
              <th>Source</th>
              <th>Connected</th>
              <th>Consistent</th>
              <th>Lag</th>
              <th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {(snapshot?.readiness?.sources ?? []).map((s) => (
              <tr key={s.source}>
                <td>{s.source}</td>
                <td>{s.connected ? "yes" : "no"}</td>
                <td>{s.consistent ? "yes" : "no"}</td>
                <td className="num">{bytes(s.lag_bytes)}</td>
                <td>{s.last_error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {session && (
        <section className="panel" aria-labelledby="replication-title">
          <h2 id="replication-title">Replication health</h2>
          <ReplicationHealth store={store} schema={schema} />
        </section>
      )}
      <section className="panel" aria-labelledby="tables-title">
        <h2 id="tables-title">Tables</h2>
        <table className={`grid-table${error ? " stale" : ""}`} aria-label="Tables">
          <thead>
            <tr>
              <th>Table</th>
              <th>Source</th>
              <th>State</th>
              <th>Rows</th>
              <th>Position</th>
              <th>Memory</th>
            </tr>
          </thead>
          <tbody>
            {(snapshot?.tables ?? []).map((t) => (
              <tr key={`${t.source}/${t.name}`} data-table={t.name}>
                <td title={t.table}>{t.name}</td>
                <td>{t.source}</td>
                <td title={t.reason ?? ""}>{t.state}</td>
                <td className="num">{t.rows.toLocaleString()}</td>
                <td className="num">{t.position}</td>
                <td className="num">{bytes(snapshot?.memory.get(t.name) ?? null)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </>
  );
}
