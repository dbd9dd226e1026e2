// Replication health per source — lag (bytes and seconds), WAL the slot retains, heartbeat age —
// read from the server's /metrics every two seconds (these are measurements of the stream itself,
// not rows: they move with time as well as with transactions).
"use client";
import { useEffect, useState } from "react";
import { byLabel, parseMetrics } from "@/lib/http/prometheus";

interface SourceHealth {
  readonly source: string;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  readonly retainedWal: number | null;
  readonly heartbeatAge: number | null;
}

const POLL_MS = 2_000;

export function ReplicationHealth() {
  const [sources, setSources] = useState<readonly SourceHealth[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    const poll = async () => {
      try {
        const response = await fetch("/metrics");
        if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
        const samples = parseMetrics(await response.text());
        const get = (name: string) => byLabel(samples, `opslive_${name}`, "source");
        const [lagBytes, lagSeconds, retained, heartbeat] = [get("replication_lag_bytes"), get("replication_lag_seconds"), get("slot_retained_wal_bytes"), get("heartbeat_age_seconds")];
        const names = [...new Set([...lagBytes.keys(), ...retained.keys(), ...heartbeat.keys()])].sort();
        if (!cancelled) {
          setSources(names.map((source) => ({ source, lagBytes: lagBytes.get(source) ?? null, lagSeconds: lagSeconds.get(source) ?? null, retainedWal: retained.get(source) ?? null, heartbeatAge: heartbeat.get(source) ?? null })));
          setError(null);
        }
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
  if (error && !sources) return <p className="muted">Replication health unavailable: {error}</p>;
  if (!sources) return <p className="muted">Loading…</p>;
  return (
    <table className={`grid-table${error ? " stale" : ""}`} aria-label="Replication health">
      <thead>
        <tr>
          <th>Source</th>
          <th>Lag</th>
          <th>Retained WAL</th>
          <th>Heartbeat age</th>
        </tr>
      </thead>
      <tbody className="live-value">
        {sources.map((s) => (
          <tr key={s.source}>
            <td>{s.source}</td>
            <td className="num">
              {bytes(s.lagBytes)} · {s.lagSeconds === null ? "—" : `${s.lagSeconds.toFixed(1)} s`}
            </td>
            <td className="num">{bytes(s.retainedWal)}</td>
            <td className="num">{s.heartbeatAge === null ? "—" : `${s.heartbeatAge.toFixed(1)} s`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function bytes(n: number | null): string {
  if (n === null) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}
