// What the KPI builder can offer, read from the role's schema: each table with a live aggregate
// (`ordersAggregate`), its GraphQL type (`Orders`) and its columns with their types. A KPI can
// only read what the role can, so the role's own schema is the catalogue.
import type { RoleSchema } from "@/lib/schema/roleSchema";

export interface TableInfo {
  readonly table: string;
  readonly typePrefix: string;
  readonly columns: readonly { readonly name: string; readonly type: string }[];
}

const SUFFIX = "Aggregate";
const GROUP = "AggregateGroup";

export function tableCatalog(schema: RoleSchema): TableInfo[] {
  const roots = schema.types.get(schema.subscriptionType) ?? new Map<string, string>();
  const tables: TableInfo[] = [];
  for (const [field, returns] of roots) {
    if (!field.endsWith(SUFFIX) || !returns.endsWith(GROUP)) continue;
    const typePrefix = returns.slice(0, -GROUP.length);
    const fields = schema.types.get(typePrefix);
    if (!fields) continue;
    tables.push({ table: field.slice(0, -SUFFIX.length), typePrefix, columns: [...fields].map(([name, type]) => ({ name, type })) });
  }
  return tables.sort((a, b) => a.table.localeCompare(b.table));
}

export const TIME_TYPES: ReadonlySet<string> = new Set(["Timestamptz", "Timestamp", "Date"]);
export const NUMBER_TYPES: ReadonlySet<string> = new Set(["Int", "Float", "BigInt", "Numeric"]);
