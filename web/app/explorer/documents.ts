// The Explorer's GraphQL: the user's saved queries (kept per token `sub`, listed by name), and
// saving (an upsert by name) and deleting one.
import { graphql, type ResultOf } from "@/lib/graphql/graphql";

export const SavedQueries = graphql(`
  query SavedQueries {
    savedQueries { id name query variables updatedAt }
  }
`);
export type SavedQuery = ResultOf<typeof SavedQueries>["savedQueries"][number];

export const SaveQuery = graphql(`
  mutation SaveQuery($name: String!, $query: String!, $variables: JSON) {
    saveQuery(name: $name, query: $query, variables: $variables) { id name updatedAt }
  }
`);

export const DeleteSavedQuery = graphql(`
  mutation DeleteSavedQuery($id: ID!) {
    deleteSavedQuery(id: $id)
  }
`);
