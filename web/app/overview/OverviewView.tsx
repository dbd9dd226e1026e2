// The Overview: what is firing now, every KPI the role may read, and replication health.
"use client";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { AlertsStrip } from "./AlertsStrip";
import { KpiTiles } from "./KpiTiles";
import { ReplicationHealth } from "./ReplicationHealth";

export function OverviewView() {
  const { session, store, schema } = useLiveContext();
  if (!session) return null;
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>Overview</h1>
      <section className="panel" aria-labelledby="alerts-title">
        <h2 id="alerts-title">Alerts</h2>
        <AlertsStrip store={store} schema={schema} token={session.token} />
      </section>
      <section aria-labelledby="kpis-title">
        <h2 id="kpis-title" className="muted" style={{ fontSize: 13, textTransform: "uppercase", margin: "0 0 8px" }}>
          KPIs
        </h2>
        <KpiTiles store={store} schema={schema} token={session.token} sub={session.sub} />
      </section>
      <section className="panel" aria-labelledby="replication-title">
        <h2 id="replication-title">Replication</h2>
        <ReplicationHealth store={store} schema={schema} />
      </section>
    </>
  );
}
