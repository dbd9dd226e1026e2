// The Alerts page's GraphQL: rules (with their stored definitions, for the editor), the live
// alerts, silences, history, and the mutations behind acknowledge, the editor and silences.
import { graphql, type ResultOf } from "@/lib/graphql/graphql";

export const AlertRules = graphql(`
  query AlertRules {
    alertRules { id name severity labels summary kpiId table for keepFiringFor definition problem overflow maxInstances createdBy updatedBy updatedAt }
  }
`);
export type Rule = ResultOf<typeof AlertRules>["alertRules"][number];

export const LiveAlerts = graphql(`
  subscription LiveAlerts {
    alerts {
      ruleId ruleName instance labels state severity since activeSince value row summary
      cause { source position commitTs dueAt }
      acknowledged acknowledgedBy acknowledgedAt acknowledgementNote silenced
    }
  }
`);
export type Instance = ResultOf<typeof LiveAlerts>["alerts"][number];

export const Silences = graphql(`
  query Silences {
    silences { id matchers { label value negated } startsAt endsAt comment createdBy }
  }
`);
export type Silence = ResultOf<typeof Silences>["silences"][number];

export const AlertHistory = graphql(`
  query AlertHistory($ruleId: ID, $limit: Int) {
    alertHistory(ruleId: $ruleId, limit: $limit) {
      id ruleId instance labels from to at value before after summary recordedAt
      cause { source position commitTs dueAt }
    }
  }
`);
export type Transition = ResultOf<typeof AlertHistory>["alertHistory"][number];

export const CreateRule = graphql(`
  mutation CreateRule($input: AlertRuleInput!) { createAlertRule(input: $input) { id name } }
`);
export const UpdateRule = graphql(`
  mutation UpdateRule($id: ID!, $input: AlertRuleInput!) { updateAlertRule(id: $id, input: $input) { id name } }
`);
export const DeleteRule = graphql(`
  mutation DeleteRule($id: ID!) { deleteAlertRule(id: $id) }
`);
export const Acknowledge = graphql(`
  mutation Acknowledge($ruleId: ID!, $instance: String!, $note: String) {
    acknowledgeAlert(ruleId: $ruleId, instance: $instance, note: $note) { ruleId instance acknowledged }
  }
`);
export const CreateSilence = graphql(`
  mutation CreateSilence($matchers: [SilenceMatcherInput!]!, $duration: String, $comment: String) {
    createSilence(matchers: $matchers, duration: $duration, comment: $comment) { id }
  }
`);
export const ExpireSilence = graphql(`
  mutation ExpireSilence($id: ID!) { expireSilence(id: $id) }
`);
