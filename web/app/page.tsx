// Overview: KPI tiles, firing alerts, replication health (filled in by the overview step).
export default function OverviewPage() {
  return <h1>Overview</h1>;
}
