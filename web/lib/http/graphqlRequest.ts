// One-shot GraphQL over HTTP (`POST /graphql`) for what is not live: history ranges and
// mutations. A refused token sends the user to sign in again. The server refuses a token with a
// 401 (whatever its code); an UNAUTHENTICATED error inside a 200 is one field refusing this
// caller (the per-user workspace needs a token with a `sub`), an error for the page to show, not a
// reason to sign out.
import type { ResultOf, TadaDocumentNode, VariablesOf } from "gql.tada";
import { queryText } from "@/lib/live/hooks";
import { redirectToSignIn } from "@/lib/auth/signInRedirect";
import type { GraphQLErrorLike } from "@/lib/live/client";

export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly errors: readonly GraphQLErrorLike[],
  ) {
    super(message);
  }
}

export async function graphqlRequest<D extends TadaDocumentNode<ResultOf<D>, VariablesOf<D>>>(
  token: string,
  document: D,
  variables?: VariablesOf<D>,
): Promise<ResultOf<D>> {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
      Authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query: queryText(document), variables: variables ?? {} }),
  });
  const body = (await response.json().catch(() => ({}))) as { data?: ResultOf<D> | null; errors?: GraphQLErrorLike[] };
  const code = body.errors?.[0]?.extensions?.code;
  if (response.status === 401 || code === "TOKEN_EXPIRED" || code === "TOKEN_REVOKED" || code === "INVALID_TOKEN") {
    redirectToSignIn(code === "TOKEN_EXPIRED" ? "expired" : code === "TOKEN_REVOKED" ? "revoked" : "refused");
    throw new GraphQLRequestError("signed out", body.errors ?? []);
  }
  if (body.errors && body.errors.length > 0) throw new GraphQLRequestError(body.errors.map((e) => e.message).join("; "), body.errors);
  if (!body.data) throw new GraphQLRequestError(`the server answered ${response.status} without data`, []);
  return body.data;
}
