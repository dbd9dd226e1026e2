// The KPI builder: pick a table the role can aggregate, an aggregate over a column or an
// expression, a filter, a window, a grouping, a comparison and a view; watch the value live in
// the preview; save it with `createKpi` (the server checks it against the table and the policy).
// A saved KPI is a tile on the Overview for every role allowed to read it; "Place on the overview"
// also names it last in the user's own tile layout, so it stays after the tiles they arranged.
"use client";
import Link from "next/link";
import { useEffect, useMemo, useState } from "react";
import { graphqlRequest } from "@/lib/http/graphqlRequest";
import type { VariablesOf } from "@/lib/graphql/graphql";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { canMutate, canQuery } from "@/lib/schema/roleSchema";
import { placeOnOverview } from "@/app/overview/placeKpi";
import { CreateKpi } from "./documents";
import { KpiPreview } from "./KpiPreview";
import { AGGREGATES, toKpiInput, type Aggregate, type KpiDraft, type Measure } from "./kpiDraft";
import { NUMBER_TYPES, TIME_TYPES, tableCatalog } from "./tableCatalog";

const EMPTY: KpiDraft = { name: "", table: "", aggregate: "COUNT", measure: { kind: "column", column: "" }, filter: "", groupBy: [], window: null, comparison: "", unit: "", viewRole: "", viewClaims: "" };

/** The draft the preview follows, settled for a moment (typing a filter must not resubscribe per key). */
function useSettled<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function KpiBuilderView() {
  const { session, store, schema } = useLiveContext();
  const tables = useMemo(() => (schema ? tableCatalog(schema) : []), [schema]);
  const [draft, setDraft] = useState<KpiDraft>(EMPTY);
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [place, setPlace] = useState(true);
  const settled = useSettled(draft, 400);
  const table = tables.find((t) => t.table === draft.table) ?? tables[0] ?? null;

  useEffect(() => {
    if (table && draft.table !== table.table) setDraft((d) => ({ ...d, table: table.table, groupBy: [], window: null, measure: { kind: "column", column: table.columns.find((c) => NUMBER_TYPES.has(c.type))?.name ?? "" } }));
  }, [table, draft.table]);

  if (!session) return null;
  if (schema && tables.length === 0) return <p className="panel-note">Your role cannot aggregate any table.</p>;
  if (!table) return <p className="muted">Loading…</p>;
  const set = (patch: Partial<KpiDraft>) => setDraft((d) => ({ ...d, ...patch }));
  const columns = table.columns.map((c) => c.name);
  const timeColumns = table.columns.filter((c) => TIME_TYPES.has(c.type)).map((c) => c.name);
  const canSave = schema ? canMutate(schema, "createKpi") : false;
  // A layout is kept per token `sub`: without one there is none to place the KPI in.
  const canPlace = schema !== null && session.sub !== "" && canQuery(schema, "overviewLayout") && canMutate(schema, "saveOverviewLayout");

  const save = async () => {
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const input = toKpiInput(draft) as VariablesOf<typeof CreateKpi>["input"];
      const { createKpi } = await graphqlRequest(session.token, CreateKpi, { input });
      let placed = "";
      if (canPlace && place) {
        try {
          await placeOnOverview(session.token, createKpi.id);
          placed = ", placed last in your layout";
        } catch (e) {
          setError(`The KPI is saved, but placing it on your overview failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      setSaved(`${createKpi.name} (id ${createKpi.id})${placed}`);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>KPI builder</h1>
      <div className="grid-2">
        <section className="panel form-grid" aria-label="KPI definition">
          <label>
            Name <input value={draft.name} onChange={(e) => set({ name: e.target.value })} placeholder="Orders per minute" />
          </label>
          <label>
            Table{" "}
            <select aria-label="Table" value={table.table} onChange={(e) => set({ table: e.target.value })}>
              {tables.map((t) => (
                <option key={t.table}>{t.table}</option>
              ))}
            </select>
          </label>
          <label>
            Aggregate{" "}
            <select aria-label="Aggregate" value={draft.aggregate} onChange={(e) => set({ aggregate: e.target.value as Aggregate })}>
              {AGGREGATES.map((a) => (
                <option key={a}>{a}</option>
              ))}
            </select>
          </label>
          {draft.aggregate !== "COUNT" ? <MeasureField measure={draft.measure} columns={columns} timeColumns={timeColumns} onChange={(measure) => set({ measure })} /> : null}
          <label>
            Filter <span className="muted small">(the `where` language as JSON, e.g. {`{"status": {"eq": "paid"}}`})</span>
            <textarea aria-label="Filter" rows={3} value={draft.filter} onChange={(e) => set({ filter: e.target.value })} style={{ width: "100%", fontFamily: "ui-monospace, monospace" }} />
          </label>
          <fieldset>
            <legend>Group by</legend>
            {columns.map((c) => (
              <label key={c} className="small" style={{ marginRight: 8 }}>
                <input type="checkbox" checked={draft.groupBy.includes(c)} onChange={(e) => set({ groupBy: e.target.checked ? [...draft.groupBy, c] : draft.groupBy.filter((g) => g !== c) })} /> {c}
              </label>
            ))}
          </fieldset>
          <label>
            Window{" "}
            <select aria-label="Window" value={draft.window ? (draft.window.today ? "today" : "last") : ""} onChange={(e) => set({ window: e.target.value ? { column: draft.window?.column ?? timeColumns[0] ?? "", last: draft.window?.last ?? "PT15M", today: e.target.value === "today" } : null })} disabled={timeColumns.length === 0}>
              <option value="">all rows</option>
              <option value="last">the last …</option>
              <option value="today">today</option>
            </select>
            {draft.window ? (
              <>
                {!draft.window.today ? <input aria-label="Window length" value={draft.window.last} onChange={(e) => set({ window: { ...draft.window!, last: e.target.value } })} style={{ width: 80 }} /> : null} by{" "}
                <select aria-label="Window column" value={draft.window.column} onChange={(e) => set({ window: { ...draft.window!, column: e.target.value } })}>
                  {timeColumns.map((c) => (
                    <option key={c}>{c}</option>
                  ))}
                </select>
              </>
            ) : null}
          </label>
          <label>
            Compare with{" "}
            <select aria-label="Comparison" value={draft.comparison} onChange={(e) => set({ comparison: e.target.value as KpiDraft["comparison"] })}>
              <option value="">nothing</option>
              <option value="DAY_BEFORE">the day before</option>
              <option value="WEEK_BEFORE">the week before</option>
            </select>
          </label>
          <label>
            Unit <input value={draft.unit} onChange={(e) => set({ unit: e.target.value })} style={{ width: 100 }} />
          </label>
          <label>
            View as role <input aria-label="View role" value={draft.viewRole} onChange={(e) => set({ viewRole: e.target.value })} placeholder="(all rows)" style={{ width: 140 }} />{" "}
            claims <input aria-label="View claims" value={draft.viewClaims} onChange={(e) => set({ viewClaims: e.target.value })} placeholder='{"warehouses": ["WH-BER"]}' />
          </label>
          <p className="toolbar">
            <button type="button" disabled={busy || !canSave || draft.name.trim() === ""} onClick={() => void save()}>
              Save KPI
            </button>
            {canSave && canPlace ? (
              <label>
                <input type="checkbox" checked={place} onChange={(e) => setPlace(e.target.checked)} /> Place on the overview
              </label>
            ) : null}
            {!canSave ? <span className="muted">Your role cannot define KPIs.</span> : null}
          </p>
          {error ? (
            <p className="error" role="alert">
              {error}
            </p>
          ) : null}
          {saved ? (
            <p role="status">
              Saved {saved}: its tile is on the <Link href="/">Overview</Link>.
            </p>
          ) : null}
        </section>
        <section className="panel" aria-labelledby="preview-title">
          <h2 id="preview-title">Preview · live</h2>
          <KpiPreview store={store} draft={settled.table ? settled : { ...settled, table: table.table }} typePrefix={tables.find((t) => t.table === (settled.table || table.table))?.typePrefix ?? table.typePrefix} />
        </section>
      </div>
    </>
  );
}

function MeasureField({ measure, columns, timeColumns, onChange }: { measure: Measure; columns: readonly string[]; timeColumns: readonly string[]; onChange: (m: Measure) => void }) {
  const first = columns[0] ?? "";
  const firstTime = timeColumns[0] ?? "";
  return (
    <label>
      Of{" "}
      <select
        aria-label="Measure"
        value={measure.kind}
        onChange={(e) => {
          const kind = e.target.value as Measure["kind"];
          onChange(kind === "column" ? { kind, column: first } : kind === "age" ? { kind, column: firstTime } : { kind, later: timeColumns[1] ?? firstTime, earlier: firstTime });
        }}
      >
        <option value="column">a column</option>
        <option value="age" disabled={timeColumns.length === 0}>
          the age of (now − column)
        </option>
        <option value="difference">a difference (later − earlier)</option>
      </select>{" "}
      {measure.kind === "difference" ? (
        <>
          <ColumnSelect label="Later" value={measure.later} columns={columns} onChange={(later) => onChange({ ...measure, later })} /> −{" "}
          <ColumnSelect label="Earlier" value={measure.earlier} columns={columns} onChange={(earlier) => onChange({ ...measure, earlier })} />
        </>
      ) : (
        <ColumnSelect label="Column" value={measure.column} columns={measure.kind === "age" ? timeColumns : columns} onChange={(column) => onChange({ ...measure, column })} />
      )}
    </label>
  );
}

function ColumnSelect({ label, value, columns, onChange }: { label: string; value: string; columns: readonly string[]; onChange: (c: string) => void }) {
  return (
    <select aria-label={label} value={value} onChange={(e) => onChange(e.target.value)}>
      {columns.map((c) => (
        <option key={c}>{c}</option>
      ))}
    </select>
  );
}
