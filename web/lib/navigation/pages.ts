// The dashboard's pages and what each needs from the role's schema: the nav offers a page only
// when the role's SDL has the root fields it reads.
import { canQuery, canSubscribe, type RoleSchema } from "@/lib/schema/roleSchema";

export interface PageLink {
  readonly href: string;
  readonly label: string;
  readonly readable: (schema: RoleSchema) => boolean;
}

export const PAGES: readonly PageLink[] = [
  { href: "/", label: "Overview", readable: (s) => canSubscribe(s, "kpis") || canSubscribe(s, "alerts") },
  { href: "/orders/", label: "Orders", readable: (s) => canSubscribe(s, "ordersPatches") || canSubscribe(s, "ordersAggregate") },
  { href: "/alerts/", label: "Alerts", readable: (s) => canSubscribe(s, "alerts") },
  { href: "/inventory/", label: "Inventory", readable: (s) => canSubscribe(s, "inventoryPatches") || canSubscribe(s, "inventoryAggregate") },
  { href: "/support/", label: "Support", readable: (s) => canSubscribe(s, "ticketsAggregate") },
  { href: "/reconciliation/", label: "Reconciliation", readable: (s) => canSubscribe(s, "reconciliationBatchesPatches") },
  { href: "/notifications/", label: "Notifications", readable: (s) => canQuery(s, "contactPoints") },
  { href: "/kpis/", label: "KPI builder", readable: (s) => [...(s.types.get(s.subscriptionType)?.keys() ?? [])].some((f) => f.endsWith("Aggregate")) },
  { href: "/explorer/", label: "Explorer", readable: () => true },
  { href: "/status/", label: "Status", readable: () => true },
];

export function readablePages(schema: RoleSchema): readonly PageLink[] {
  return PAGES.filter((page) => page.readable(schema));
}
