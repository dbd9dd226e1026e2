// The KPI builder's mutation (the preview's query is built from the draft at run time).
import { graphql } from "@/lib/graphql/graphql";

export const CreateKpi = graphql(`
  mutation CreateKpi($input: KpiInput!) {
    createKpi(input: $input) { id name value ready notReadyReason }
  }
`);
