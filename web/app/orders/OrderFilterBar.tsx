// The Orders page's filters: one select per column the role can see, its choices read once from
// the aggregate of that column. The values live in the URL (see useOrderFilters).
"use client";
import { useEffect, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import { hasField, type RoleSchema } from "@/lib/schema/roleSchema";
import { OrderFacets } from "./documents";
import type { FilterName, OrderFilters } from "./useOrderFilters";

/** The column each filter reads. */
export const FILTER_COLUMNS: Readonly<Record<FilterName, string>> = { channel: "channel", status: "status", warehouse: "warehouseId", region: "region" };

/** The filters this role can use (it can only filter on columns it sees). */
export function usableFilters(schema: RoleSchema): FilterName[] {
  return (Object.keys(FILTER_COLUMNS) as FilterName[]).filter((name) => hasField(schema, "Orders", FILTER_COLUMNS[name]));
}

export function OrderFilterBar({ schema, token, filters, setFilter, clear }: { schema: RoleSchema; token: string; filters: OrderFilters; setFilter: (name: FilterName, value: string | null) => void; clear: () => void }) {
  const usable = usableFilters(schema);
  const [choices, setChoices] = useState<Partial<Record<FilterName, string[]>>>({});
  const usableKey = usable.join(",");
  useEffect(() => {
    let cancelled = false;
    for (const name of usableKey.split(",").filter(Boolean) as FilterName[]) {
      void facet(token, name).then((values) => {
        if (!cancelled) setChoices((current) => ({ ...current, [name]: values }));
      });
    }
    return () => {
      cancelled = true;
    };
  }, [token, usableKey]);

  return (
    <div className="toolbar" role="search" aria-label="Order filters">
      {usable.map((name) => {
        const value = filters[name];
        const options = choices[name] ?? [];
        return (
          <label key={name}>
            <span className="muted">{name} </span>
            <select aria-label={name} value={value ?? ""} onChange={(e) => setFilter(name, e.target.value || null)}>
              <option value="">all</option>
              {value && !options.includes(value) ? <option value={value}>{value}</option> : null}
              {options.map((option) => (
                <option key={option} value={option}>
                  {option}
                </option>
              ))}
            </select>
          </label>
        );
      })}
      {usable.some((name) => filters[name]) ? (
        <button type="button" onClick={clear}>
          Clear filters
        </button>
      ) : null}
    </div>
  );
}

async function facet(token: string, name: FilterName): Promise<string[]> {
  try {
    const { ordersAggregate } = await graphqlRequest(token, OrderFacets[name]);
    const values = ordersAggregate.map((g) => (g.key as Record<string, unknown>)[FILTER_COLUMNS[name]]);
    return values.filter((v): v is string => typeof v === "string").sort();
  } catch {
    return [];
  }
}
