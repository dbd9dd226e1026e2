// The Orders page's filters, kept in the URL query (`?channel=web&status=paid&warehouse=WH-BER`)
// so a view can be shared and survives a reload; turned into the `where` of its live queries.
"use client";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useMemo } from "react";
import type { OrdersWhere } from "./documents";

export const FILTER_NAMES = ["channel", "status", "warehouse", "region"] as const;
export type FilterName = (typeof FILTER_NAMES)[number];
export type OrderFilters = Readonly<Record<FilterName, string | null>>;

export function useOrderFilters(): { filters: OrderFilters; setFilter: (name: FilterName, value: string | null) => void; clear: () => void } {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const filters = useMemo(
    () => Object.fromEntries(FILTER_NAMES.map((name) => [name, params.get(name) || null])) as Record<FilterName, string | null>,
    [params],
  );
  const setFilter = useCallback(
    (name: FilterName, value: string | null) => {
      const next = new URLSearchParams(params.toString());
      if (value) next.set(name, value);
      else next.delete(name);
      const query = next.toString();
      router.replace(query ? `${pathname}?${query}` : pathname, { scroll: false });
    },
    [params, router, pathname],
  );
  const clear = useCallback(() => router.replace(pathname, { scroll: false }), [router, pathname]);
  return { filters, setFilter, clear };
}

/** The filters as an `OrdersBoolExp` (all must hold). `without` leaves one out (the funnel groups by status). */
export function filtersToWhere(filters: OrderFilters, without?: FilterName): OrdersWhere {
  const where: { -readonly [K in keyof OrdersWhere]: OrdersWhere[K] } = {};
  if (filters.channel && without !== "channel") where.channel = { eq: filters.channel };
  if (filters.status && without !== "status") where.status = { eq: filters.status };
  if (filters.warehouse && without !== "warehouse") where.warehouseId = { eq: filters.warehouse };
  if (filters.region && without !== "region") where.region = { eq: filters.region };
  return where;
}
