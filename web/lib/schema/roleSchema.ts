// What the signed-in role may read, from its own SDL (`GET /graphql/schema.graphql`): the root
// fields of Query and Subscription and the fields of each object type. Pages use it to offer
// only what the role can open, to drop columns it cannot see from their documents (see
// `prune.ts`), and to say "your role cannot see X" instead of failing. The SDL the server writes
// is regular, so a small scanner does (no graphql-js in the bundle).

export interface RoleSchema {
  /** Object types by name: field name → named return type. */
  readonly types: ReadonlyMap<string, ReadonlyMap<string, string>>;
  readonly queryType: string;
  readonly subscriptionType: string;
  readonly mutationType: string;
}

/** Reads type definitions out of SDL text. */
export function parseRoleSchema(sdl: string): RoleSchema {
  const text = stripParenthesised(stripCommentsAndStrings(sdl));
  const types = new Map<string, Map<string, string>>();
  const block = /\b(?:type|interface|input)\s+([A-Za-z_]\w*)[^{]*\{([^}]*)\}/g;
  for (let match = block.exec(text); match; match = block.exec(text)) {
    const fields = new Map<string, string>();
    const field = /([A-Za-z_]\w*)\s*:\s*\[*\s*([A-Za-z_]\w*)/g;
    const body = match[2] ?? "";
    for (let f = field.exec(body); f; f = field.exec(body)) fields.set(f[1] as string, f[2] as string);
    types.set(match[1] as string, fields);
  }
  const roots = /\bschema\s*\{([^}]*)\}/.exec(text)?.[1] ?? "";
  const root = (op: string, fallback: string) => new RegExp(`${op}\\s*:\\s*([A-Za-z_]\\w*)`).exec(roots)?.[1] ?? fallback;
  return {
    types,
    queryType: root("query", "Query"),
    subscriptionType: root("subscription", "Subscription"),
    mutationType: root("mutation", "Mutation"),
  };
}

function stripCommentsAndStrings(sdl: string): string {
  return sdl
    .replace(/"""[\s\S]*?"""/g, " ")
    .replace(/"(?:[^"\\\n]|\\.)*"/g, '""')
    .replace(/#[^\n]*/g, " ");
}

/** Removes argument lists (which can span lines and hold `:` of their own). */
function stripParenthesised(text: string): string {
  let out = "";
  let depth = 0;
  for (const ch of text) {
    if (ch === "(") depth += 1;
    else if (ch === ")") depth = Math.max(0, depth - 1);
    else if (depth === 0) out += ch;
  }
  return out;
}

export function hasType(schema: RoleSchema, type: string): boolean {
  return schema.types.has(type);
}

export function hasField(schema: RoleSchema, type: string, field: string): boolean {
  return schema.types.get(type)?.has(field) ?? false;
}

export function canQuery(schema: RoleSchema, field: string): boolean {
  return hasField(schema, schema.queryType, field);
}

export function canSubscribe(schema: RoleSchema, field: string): boolean {
  return hasField(schema, schema.subscriptionType, field);
}

export function canMutate(schema: RoleSchema, field: string): boolean {
  return hasField(schema, schema.mutationType, field);
}
