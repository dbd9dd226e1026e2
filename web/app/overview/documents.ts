// The Overview's GraphQL: the live KPIs and alerts, the rules (for threshold proximity), KPI
// history (sparklines, comparisons), the acknowledgement, and the user's own tile layout.
import { graphql, type ResultOf } from "@/lib/graphql/graphql";

export const LiveKpis = graphql(`
  subscription LiveKpis {
    kpis(builtin: false) {
      id name unit aggregate groupBy definition
      value valueFloat
      groups { key value valueFloat }
      ready notReadyReason seq
      asOf { position commitTs }
    }
  }
`);
export type LiveKpi = ResultOf<typeof LiveKpis>["kpis"][number];

// Each source's health: the built-in KPIs, sampled by the server once a second.
export const SourceHealthKpis = graphql(`
  subscription SourceHealthKpis {
    kpis(builtin: true) {
      id value valueFloat ready
      source { source measure }
    }
  }
`);
export type SourceHealthKpi = ResultOf<typeof SourceHealthKpis>["kpis"][number];

export const FiringAlerts = graphql(`
  subscription FiringAlerts {
    alerts {
      ruleId ruleName instance labels state severity since activeSince value summary
      cause { source position commitTs dueAt }
      acknowledged acknowledgedBy acknowledgedAt acknowledgementNote silenced
    }
  }
`);
export type LiveAlert = ResultOf<typeof FiringAlerts>["alerts"][number];

export const KpiRules = graphql(`
  query KpiRules {
    alertRules { id name kpiId definition problem }
  }
`);
export type KpiRule = ResultOf<typeof KpiRules>["alertRules"][number];

export const KpiSeries = graphql(`
  query KpiSeries($id: ID!, $from: Timestamptz, $to: Timestamptz) {
    kpiHistory(id: $id, from: $from, to: $to, step: "PT1M") { at group lastFloat }
  }
`);
export type KpiPoint = ResultOf<typeof KpiSeries>["kpiHistory"][number];

export const AcknowledgeAlert = graphql(`
  mutation AcknowledgeAlert($ruleId: ID!, $instance: String!, $note: String) {
    acknowledgeAlert(ruleId: $ruleId, instance: $instance, note: $note) { ruleId instance acknowledged acknowledgedBy acknowledgedAt }
  }
`);

// The caller's arrangement of the KPI tiles (kept per token `sub`; empty until saved).
export const OverviewLayoutQuery = graphql(`
  query OverviewLayout {
    overviewLayout { tiles hidden updatedAt }
  }
`);
export type SavedLayout = ResultOf<typeof OverviewLayoutQuery>["overviewLayout"];

export const SaveOverviewLayout = graphql(`
  mutation SaveOverviewLayout($tiles: [ID!]!, $hidden: [ID!]!) {
    saveOverviewLayout(tiles: $tiles, hidden: $hidden) { tiles hidden updatedAt }
  }
`);

// The KPIs' ids in the server's order (the builder places a new KPI after those shown).
export const KpiIds = graphql(`
  query KpiIds {
    kpis(builtin: false) { id }
  }
`);
