// The Support page's GraphQL: open tickets per queue and priority, the tickets still waiting for a
// first response (how long they have waited, from `openedAt` percentiles), agents per queue and
// availability, and the KPIs over tickets (first-response time among them).
import { graphql } from "@/lib/graphql/graphql";

export const OpenTickets = graphql(`
  subscription OpenTickets {
    ticketsAggregate(where: { status: { in: ["new", "open", "pending"] } }, groupBy: [QUEUE, PRIORITY]) { key { queue priority } count }
  }
`);

/** Waiting since `openedAt`: the median wait is now − p50(openedAt), the longest now − min(openedAt). */
export const WaitingForResponse = graphql(`
  subscription WaitingForResponse {
    ticketsAggregate(where: { status: { in: ["new", "open"] }, firstResponseAt: { isNull: true } }, groupBy: [QUEUE]) {
      key { queue }
      count
      p50 { openedAt }
      min { openedAt }
    }
  }
`);

export const AgentAvailability = graphql(`
  subscription AgentAvailability {
    agentsAggregate(groupBy: [QUEUE, AVAILABILITY]) { key { queue availability } count }
  }
`);

export const TicketKpis = graphql(`
  subscription TicketKpis {
    kpis(builtin: false) { id name table unit aggregate groupBy value valueFloat groups { key value valueFloat } ready }
  }
`);
