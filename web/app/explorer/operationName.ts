// The operation GraphiQL asks for, mended against the document it sends. GraphiQL reads the
// query from the editor when it runs, but the operation name and the parsed document from its
// store, which it updates after a debounce: run right after a tab switch, they still belong to
// the previous tab. The server then answered "Unknown operation named …", and worse, the
// fetcher, which picks the WebSocket only when the *parsed* document is a subscription, sent a
// live query over HTTP, so it never moved (the flaky Explorer e2e). Both are derived here from
// the text being sent: a name the document does not define is replaced by its only operation's
// name, or dropped when there are several (the server then says which to pick); a missing name
// becomes the only operation's name.
import { Kind, parse, type DocumentNode } from "graphql";

export interface OperationParams {
  query: string;
  operationName?: string | null;
}

export interface OperationOptions {
  documentAST?: DocumentNode;
}

export function mendOperation<P extends OperationParams, O extends OperationOptions>(params: P, options: O | undefined): [P, O | undefined] {
  let documentAST: DocumentNode;
  try {
    documentAST = parse(params.query);
  } catch {
    return [params, options]; // the server reports the syntax error
  }
  const names = documentAST.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION).map((d) => (d.kind === Kind.OPERATION_DEFINITION ? d.name?.value : undefined));
  const only = names.length === 1 ? names[0] : undefined;
  const fresh = { ...options, documentAST } as O;
  if (params.operationName && names.includes(params.operationName)) return [params, fresh];
  if (!params.operationName && !only) return [params, fresh];
  return [{ ...params, operationName: only ?? null }, fresh];
}
