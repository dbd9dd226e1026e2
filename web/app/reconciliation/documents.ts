// The Reconciliation page's GraphQL: the latest batches as keyed patches, open exceptions counted
// per batch, and one batch's exceptions for the drill-down.
import { graphql, type ResultOf } from "@/lib/graphql/graphql";

export const LatestBatches = graphql(`
  subscription LatestBatches($limit: Int!) {
    reconciliationBatchesPatches(orderBy: [{ openedAt: DESC }, { id: DESC }], limit: $limit) {
      seq
      asOf { position commitTs }
      reset { id account batchDate expectedCount matchedCount expectedAmount matchedAmount status openedAt closedAt }
      patch {
        upserts { index row { id account batchDate expectedCount matchedCount expectedAmount matchedAmount status openedAt closedAt } }
        removedKeys { id }
      }
    }
  }
`);
export type Batch = NonNullable<ResultOf<typeof LatestBatches>["reconciliationBatchesPatches"]["reset"]>[number];

export const OpenExceptionsPerBatch = graphql(`
  subscription OpenExceptionsPerBatch {
    reconciliationExceptionsAggregate(where: { resolvedAt: { isNull: true } }, groupBy: [BATCH_ID]) { key { batchId } count }
  }
`);

export const BatchExceptions = graphql(`
  subscription BatchExceptions($batchId: BigInt!) {
    reconciliationExceptionsPatches(where: { batchId: { eq: $batchId } }, orderBy: [{ createdAt: DESC }]) {
      seq
      asOf { position commitTs }
      reset { id batchId kind amount detail createdAt resolvedAt }
      patch {
        upserts { index row { id batchId kind amount detail createdAt resolvedAt } }
        removedKeys { id }
      }
    }
  }
`);
export type BatchException = NonNullable<ResultOf<typeof BatchExceptions>["reconciliationExceptionsPatches"]["reset"]>[number];
