// The status funnel: orders of the last 24 hours per status, in the order an order moves through
// them (cancelled and refunded aside), as bars against the largest step. Clicking a step filters
// the page by that status. Live: one update per transaction that moves an order between steps.
"use client";
import { useMemo } from "react";
import { useLiveResult } from "@/lib/live/hooks";
import type { LiveStore } from "@/lib/live/store";
import type { RoleSchema } from "@/lib/schema/roleSchema";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { OrdersByStatus, type OrdersWhere } from "./documents";

/** The funnel moves at most ten times a second: under a burst every transaction moves a count. */
const FUNNEL_PACE_MS = 100;

export const FUNNEL_STEPS = ["pending", "paid", "picking", "shipped", "delivered"] as const;
const ASIDE = ["cancelled", "refunded"];

export function StatusFunnel({ store, schema, where, selected, onSelect }: { store: LiveStore | null; schema: RoleSchema | null; where: OrdersWhere; selected: string | null; onSelect: (status: string | null) => void }) {
  const { document } = usePrunedDocument(OrdersByStatus, schema);
  const variables = useMemo(() => ({ where: { ...where, createdAt: { gtAgo: "PT24H" } } }), [where]);
  const result = useLiveResult(store, document, variables, FUNNEL_PACE_MS);
  if (schema && !document) return <p className="panel-note">Your role cannot count orders by status.</p>;
  const counts = new Map((result.data?.ordersAggregate ?? []).map((g) => [g.key.status ?? "(none)", g.count]));
  const others = [...counts.keys()].filter((s) => !(FUNNEL_STEPS as readonly string[]).includes(s) && !ASIDE.includes(s)).sort();
  const steps = [...FUNNEL_STEPS, ...others, ...ASIDE];
  const max = Math.max(1, ...counts.values());
  return (
    <div className="live-value" role="list" aria-label="Orders per status, last 24 hours">
      {steps.map((status) => {
        const count = counts.get(status) ?? 0;
        return (
          <div key={status} role="listitem" className={`bar-row${ASIDE.includes(status) ? " aside" : ""}`} data-status={status}>
            <button type="button" onClick={() => onSelect(selected === status ? null : status)} aria-pressed={selected === status} style={{ textAlign: "left" }}>
              {status}
            </button>
            <div className="bar-track">
              <div className="bar-fill" style={{ transform: `scaleX(${count / max})` }} />
            </div>
            <span className="num">{result.data ? count : "…"}</span>
          </div>
        );
      })}
      {result.error ? <p className="error">{result.error}</p> : null}
    </div>
  );
}
