// A KPI being built: the form's state, the `KpiInput` it saves as, and the live aggregate query
// that previews it before it is saved (the same aggregate engine answers both). The KPI filter
// language writes column and relative-time operands as `{ lt: { column: "b" } }` and
// `{ gt: { ago: "PT1H" } }`; GraphQL `where` spells them `ltColumn` and `gtAgo`.

export const AGGREGATES = ["COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX", "P50", "P90", "P95", "P99"] as const;
export type Aggregate = (typeof AGGREGATES)[number];

export type Measure = { kind: "column"; column: string } | { kind: "age"; column: string } | { kind: "difference"; later: string; earlier: string };

export interface KpiDraft {
  readonly name: string;
  readonly table: string;
  readonly aggregate: Aggregate;
  /** Ignored for COUNT (of rows). */
  readonly measure: Measure;
  /** JSON text in the KPI filter language; empty for none. */
  readonly filter: string;
  readonly groupBy: readonly string[];
  readonly window: { readonly column: string; readonly last: string; readonly today: boolean } | null;
  readonly comparison: "" | "DAY_BEFORE" | "WEEK_BEFORE";
  readonly unit: string;
  /** A role to compute the KPI as (empty: all rows), and its claims as JSON. */
  readonly viewRole: string;
  readonly viewClaims: string;
}

export function parseJsonObject(text: string, what: string): Record<string, unknown> | null {
  if (text.trim() === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

/** The `KpiInput` to save (the server checks it against the table and the policy). */
export function toKpiInput(draft: KpiDraft): Record<string, unknown> {
  const input: Record<string, unknown> = { name: draft.name.trim(), table: draft.table, aggregate: draft.aggregate };
  if (draft.aggregate !== "COUNT") {
    if (draft.measure.kind === "column") input["column"] = draft.measure.column;
    else if (draft.measure.kind === "age") input["expression"] = { age: draft.measure.column };
    else input["expression"] = { difference: { later: draft.measure.later, earlier: draft.measure.earlier } };
  }
  const filter = parseJsonObject(draft.filter, "The filter");
  if (filter) input["filter"] = filter;
  if (draft.groupBy.length > 0) input["groupBy"] = [...draft.groupBy];
  if (draft.window) input["window"] = draft.window.today ? { column: draft.window.column, today: true } : { column: draft.window.column, last: draft.window.last };
  if (draft.comparison) input["comparison"] = draft.comparison;
  if (draft.unit.trim()) input["unit"] = draft.unit.trim();
  if (draft.viewRole.trim()) input["view"] = { role: draft.viewRole.trim(), claims: parseJsonObject(draft.viewClaims, "The view's claims") ?? {} };
  return input;
}

const OPERATORS_WITH_OPERANDS = ["eq", "neq", "gt", "gte", "lt", "lte"];

/** A KPI filter as a GraphQL `where` (column and `ago` operands renamed; and/or/not walked). */
export function kpiFilterToWhere(filter: unknown): unknown {
  if (Array.isArray(filter)) return filter.map(kpiFilterToWhere);
  if (typeof filter !== "object" || filter === null) return filter;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter as Record<string, unknown>)) {
    if (key === "and" || key === "or" || key === "not") {
      out[key] = kpiFilterToWhere(value);
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      out[key] = value;
      continue;
    }
    const comparison: Record<string, unknown> = {};
    for (const [op, operand] of Object.entries(value as Record<string, unknown>)) {
      const special = OPERATORS_WITH_OPERANDS.includes(op) && typeof operand === "object" && operand !== null && !Array.isArray(operand) ? (operand as Record<string, unknown>) : null;
      if (special && typeof special["column"] === "string") comparison[`${op}Column`] = special["column"];
      else if (special && typeof special["ago"] === "string") comparison[`${op}Ago`] = special["ago"];
      else comparison[op] = operand;
    }
    out[key] = comparison;
  }
  return out;
}

/** `warehouseId` → `WAREHOUSE_ID` (the `…Column` enum's spelling). */
export function columnEnum(column: string): string {
  return column.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

const AGGREGATE_FIELDS: Record<Aggregate, string> = { COUNT: "count", COUNT_DISTINCT: "countDistinct", SUM: "sum", AVG: "avg", MIN: "min", MAX: "max", P50: "p50", P90: "p90", P95: "p95", P99: "p99" };

export interface PreviewQuery {
  readonly query: string;
  readonly variables: Record<string, unknown>;
  /** Reads one group's value out of the answer. */
  readonly valueOf: (group: Record<string, unknown>) => unknown;
  /** What the preview leaves out, for the user to know (empty when it is exact). */
  readonly caveats: readonly string[];
}

/**
 * The live aggregate that computes the draft for the signed-in user: `typePrefix` is the table's
 * GraphQL type (`Orders`). Null when the draft's measure is an expression (aggregates over
 * expressions exist only in KPIs): the value shows once saved.
 */
export function previewQuery(draft: KpiDraft, typePrefix: string, now: Date = new Date()): PreviewQuery | null {
  if (draft.aggregate !== "COUNT" && draft.measure.kind !== "column") return null;
  const caveats: string[] = [];
  let where = (kpiFilterToWhere(parseJsonObject(draft.filter, "The filter") ?? {}) ?? {}) as Record<string, unknown>;
  if (draft.window) {
    const existing = (where[draft.window.column] as Record<string, unknown> | undefined) ?? {};
    if (draft.window.today) {
      const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
      where = { ...where, [draft.window.column]: { ...existing, gte: midnight.toISOString() } };
      caveats.push("“today” is previewed in your browser's time zone, and does not roll over at midnight");
    } else {
      where = { ...where, [draft.window.column]: { ...existing, gtAgo: draft.window.last } };
    }
  }
  if (draft.viewRole.trim()) caveats.push("the preview counts what your role sees, not the view's role");
  const field = `${draft.table}Aggregate`;
  const measureField = AGGREGATE_FIELDS[draft.aggregate];
  const column = draft.measure.kind === "column" ? draft.measure.column : "";
  const measure = draft.aggregate === "COUNT" ? "count" : `${measureField} { ${column} }`;
  const groupArg = draft.groupBy.length > 0 ? `, groupBy: [${draft.groupBy.map(columnEnum).join(", ")}]` : "";
  const key = draft.groupBy.length > 0 ? `key { ${draft.groupBy.join(" ")} } ` : "";
  const query = `subscription KpiPreview($where: ${typePrefix}BoolExp) { ${field}(where: $where${groupArg}) { ${key}${measure} } }`;
  const valueOf = (group: Record<string, unknown>) => (draft.aggregate === "COUNT" ? group["count"] : ((group[measureField] as Record<string, unknown> | undefined)?.[column] ?? null));
  return { query, variables: { where }, valueOf, caveats };
}
