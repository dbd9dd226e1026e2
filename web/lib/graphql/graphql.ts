// The typed `graphql` tag: documents written in pages are checked against the committed admin
// schema (`graphql/schema.graphql`, turned into `graphql-env.d.ts` by `gql-tada generate-output`),
// so a schema change that breaks a page fails `npm run build` at the typecheck step. Scalars
// are mapped to what the server sends: 64-bit integers, decimals and times travel as strings.
import { initGraphQLTada } from "gql.tada";
import type { introspection } from "./graphql-env.d.ts";

export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: {
    ID: string;
    BigInt: string;
    Numeric: string;
    Timestamptz: string;
    Date: string;
    JSON: unknown;
  };
}>();

export type { ResultOf, VariablesOf, TadaDocumentNode } from "gql.tada";
