// The operation GraphiQL asks for, mended against the document it sends. Right after a tab
// switch GraphiQL can still hold the previous tab's operation name while the editor already
// holds the new document (its operation facts are updated after a debounce): run at that
// moment, the server answered "Unknown operation named …". A name the document does not define
// is replaced by the document's only operation's name, or dropped when there are several (the
// server then says which to pick).
import { Kind, parse } from "graphql";

export interface OperationParams {
  query: string;
  operationName?: string | null;
}

export function mendOperationName<P extends OperationParams>(params: P): P {
  if (!params.operationName) return params;
  let names: (string | undefined)[];
  try {
    names = parse(params.query)
      .definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION)
      .map((d) => (d.kind === Kind.OPERATION_DEFINITION ? d.name?.value : undefined));
  } catch {
    return params; // the server reports the syntax error
  }
  if (names.includes(params.operationName)) return params;
  const only = names.length === 1 ? names[0] : undefined;
  return { ...params, operationName: only ?? null };
}
