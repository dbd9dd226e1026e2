// The Orders page's live queries, typed against the admin schema (the page prunes them to the
// signed-in role's schema before subscribing).
import { graphql, type ResultOf, type VariablesOf } from "@/lib/graphql/graphql";

/** Orders placed in the last minute per channel (the page adds `createdAt: { gtAgo: "PT1M" }`); the server moves rows out as they age. */
export const IntakeLastMinute = graphql(`
  subscription IntakeLastMinute($where: OrdersBoolExp) {
    ordersAggregate(where: $where, groupBy: [CHANNEL]) {
      key { channel }
      count
    }
  }
`);

/** Orders per status (the funnel), under the page's filters. */
export const OrdersByStatus = graphql(`
  subscription OrdersByStatus($where: OrdersBoolExp) {
    ordersAggregate(where: $where, groupBy: [STATUS]) {
      key { status }
      count
    }
  }
`);

/** The latest orders under the page's filters, as keyed patches. */
export const LatestOrders = graphql(`
  subscription LatestOrders($where: OrdersBoolExp, $limit: Int!) {
    ordersPatches(where: $where, orderBy: [{ createdAt: DESC }], limit: $limit) {
      seq
      asOf { position commitTs }
      reset { id createdAt channel status total currency warehouseId region itemCount }
      patch {
        upserts { index row { id createdAt channel status total currency warehouseId region itemCount } }
        removedKeys { id }
      }
    }
  }
`);

export type OrderRow = NonNullable<ResultOf<typeof LatestOrders>["ordersPatches"]["reset"]>[number];
export type OrdersWhere = NonNullable<VariablesOf<typeof LatestOrders>["where"]>;

/** KPI definitions, to find one that records orders per minute by channel (for the chart's history). */
export const KpiDefinitions = graphql(`
  query KpiDefinitions {
    kpis(builtin: false) { id table aggregate groupBy definition }
  }
`);

export const KpiHistory = graphql(`
  query KpiHistory($id: ID!, $from: Timestamptz, $step: String) {
    kpiHistory(id: $id, from: $from, step: $step) { at group lastFloat }
  }
`);

/** The values a filter can take (one-shot; the choices need not move live). */
export const OrderFacets = {
  channel: graphql(`query ChannelFacet { ordersAggregate(groupBy: [CHANNEL]) { key { channel } } }`),
  status: graphql(`query StatusFacet { ordersAggregate(groupBy: [STATUS]) { key { status } } }`),
  warehouse: graphql(`query WarehouseFacet { ordersAggregate(groupBy: [WAREHOUSE_ID]) { key { warehouseId } } }`),
  region: graphql(`query RegionFacet { ordersAggregate(groupBy: [REGION]) { key { region } } }`),
} as const;
