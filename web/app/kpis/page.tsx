// /kpis/: the KPI builder with a live preview.
import { KpiBuilderView } from "./KpiBuilderView";

export default function KpiBuilderPage() {
  return <KpiBuilderView />;
}
