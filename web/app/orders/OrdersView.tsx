// The Orders page: intake per channel, the status funnel and the latest orders, all live and all
// under the filters in the URL (a filter on a column the role cannot see is ignored).
"use client";
import { useMemo } from "react";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { IntakeChart } from "./IntakeChart";
import { OrderFilterBar, usableFilters } from "./OrderFilterBar";
import { OrdersTable } from "./OrdersTable";
import { StatusFunnel } from "./StatusFunnel";
import { FILTER_NAMES, filtersToWhere, useOrderFilters, type OrderFilters } from "./useOrderFilters";

export function OrdersView() {
  const { session, store, schema } = useLiveContext();
  const { filters: asked, setFilter, clear } = useOrderFilters();
  const usableKey = schema ? usableFilters(schema).join(",") : "";
  const filters: OrderFilters = useMemo(() => {
    const usable = usableKey.split(",");
    return Object.fromEntries(FILTER_NAMES.map((name) => [name, usable.includes(name) ? asked[name] : null])) as OrderFilters;
  }, [asked, usableKey]);
  const where = useMemo(() => filtersToWhere(filters), [filters]);
  const whereWithoutStatus = useMemo(() => filtersToWhere(filters, "status"), [filters]);
  const filtered = FILTER_NAMES.some((name) => filters[name]);
  if (!session) return null;
  return (
    <>
      <div className="toolbar">
        <h1 style={{ margin: 0, fontSize: 20 }}>Orders</h1>
        {schema ? <OrderFilterBar schema={schema} token={session.token} filters={filters} setFilter={setFilter} clear={clear} /> : null}
      </div>
      <div className="grid-2">
        <section className="panel" aria-labelledby="intake-title">
          <h2 id="intake-title">Intake per channel</h2>
          <IntakeChart store={store} schema={schema} token={session.token} where={where} filtered={filtered} />
        </section>
        <section className="panel" aria-labelledby="funnel-title">
          <h2 id="funnel-title">Status funnel · last 24 h</h2>
          <StatusFunnel store={store} schema={schema} where={whereWithoutStatus} selected={filters.status} onSelect={(status) => setFilter("status", status)} />
        </section>
      </div>
      <section className="panel" aria-labelledby="orders-title">
        <h2 id="orders-title">Latest orders</h2>
        <OrdersTable store={store} schema={schema} where={where} />
      </section>
    </>
  );
}
