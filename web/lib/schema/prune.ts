// Fits a document written against the admin schema to the signed-in role's schema: fields the
// role cannot see are dropped (and a selection left empty drops its parent). A page then shows
// what remains, and names what was dropped ("your role cannot see …"), instead of failing
// validation. Typed results keep the admin's shape: a component reads only fields that
// `PrunedDocument.missing` does not list.
import type { DocumentNode, FieldNode, SelectionSetNode } from "@0no-co/graphql.web";
import type { RoleSchema } from "./roleSchema";

export interface PrunedDocument<D extends DocumentNode> {
  /** The document to send; null when nothing of its root fields remains for this role. */
  readonly document: D | null;
  /** `Type.field` of every field the role lacks. */
  readonly missing: readonly string[];
}

export function pruneDocument<D extends DocumentNode>(document: D, schema: RoleSchema): PrunedDocument<D> {
  const missing: string[] = [];
  const definitions = [];
  for (const definition of document.definitions) {
    if (definition.kind !== "OperationDefinition") {
      definitions.push(definition);
      continue;
    }
    const root =
      definition.operation === "subscription" ? schema.subscriptionType : definition.operation === "mutation" ? schema.mutationType : schema.queryType;
    const selectionSet = pruneSelections(definition.selectionSet, root, schema, missing);
    if (!selectionSet) return { document: null, missing };
    definitions.push({ ...definition, selectionSet });
  }
  const pruned = missing.length === 0 ? document : ({ ...document, definitions } as D);
  return { document: pruned, missing };
}

function pruneSelections(set: SelectionSetNode, type: string, schema: RoleSchema, missing: string[]): SelectionSetNode | null {
  const fields = schema.types.get(type);
  if (!fields) {
    missing.push(type);
    return null;
  }
  const selections = [];
  for (const selection of set.selections) {
    if (selection.kind !== "Field") {
      selections.push(selection);
      continue;
    }
    const name = selection.name.value;
    if (name === "__typename") {
      selections.push(selection);
      continue;
    }
    const returns = fields.get(name);
    if (!returns) {
      missing.push(`${type}.${name}`);
      continue;
    }
    if (!selection.selectionSet) {
      selections.push(selection);
      continue;
    }
    const inner = pruneSelections(selection.selectionSet, returns, schema, missing);
    if (inner) selections.push({ ...selection, selectionSet: inner } as FieldNode);
  }
  return selections.length === 0 ? null : { ...set, selections };
}
