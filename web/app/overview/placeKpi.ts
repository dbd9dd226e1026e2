// Puts a KPI on the signed-in user's Overview (the KPI builder does, right after `createKpi`):
// reads their layout and the KPIs' ids, places the KPI last without moving any other tile
// (`placeTile`), and saves the layout. Rejects with the server's message.
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { KpiIds, OverviewLayoutQuery, SaveOverviewLayout } from "./documents";
import { placeTile } from "./layout";

export async function placeOnOverview(token: string, kpiId: string): Promise<void> {
  const [{ overviewLayout }, { kpis }] = await Promise.all([graphqlRequest(token, OverviewLayoutQuery), graphqlRequest(token, KpiIds)]);
  const layout = placeTile(
    overviewLayout,
    kpis.map((k) => k.id),
    kpiId,
  );
  await graphqlRequest(token, SaveOverviewLayout, { tiles: [...layout.tiles], hidden: [...layout.hidden] });
}
