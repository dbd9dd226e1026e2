// The Reconciliation page: the latest batches with matching progress and open exceptions, and a
// batch's exceptions (`?batch=` in the URL), all live.
"use client";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useMemo } from "react";
import { useLiveResult, useLiveRows } from "@/lib/live/hooks";
import { useLiveContext } from "@/lib/live/useLiveContext";
import { usePrunedDocument } from "@/lib/schema/usePrunedDocument";
import { BatchTable } from "./BatchTable";
import { LatestBatches, OpenExceptionsPerBatch, type Batch } from "./documents";
import { ExceptionList } from "./ExceptionList";

const BATCHES_SHOWN = 200;

export function ReconciliationView() {
  const { session, store, schema } = useLiveContext();
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const batchId = params.get("batch");
  const batchesDocument = usePrunedDocument(LatestBatches, schema).document;
  const batches = useLiveRows<Batch>(store, batchesDocument, "reconciliationBatchesPatches", ["id"], { limit: BATCHES_SHOWN });
  const exceptions = useLiveResult(store, usePrunedDocument(OpenExceptionsPerBatch, schema).document);
  const groups = exceptions.data?.reconciliationExceptionsAggregate;
  const openExceptions = useMemo(() => (groups ? new Map(groups.map((g) => [String(g.key.batchId), g.count])) : null), [groups]);
  const open = (id: string | null) => router.replace(id ? `${pathname}?batch=${encodeURIComponent(id)}` : pathname, { scroll: false });
  if (!session) return null;
  const matching = batches.rows.filter((b) => b.status === "matching" || b.status === "open").length;
  const inException = batches.rows.filter((b) => b.status === "exception").length;
  return (
    <>
      <h1 style={{ margin: 0, fontSize: 20 }}>Reconciliation</h1>
      {batchId ? <ExceptionList store={store} schema={schema} batchId={batchId} onClose={() => open(null)} /> : null}
      <section className="panel" aria-labelledby="batches-title">
        <h2 id="batches-title">Batches</h2>
        <p className="muted live-value" style={{ margin: "0 0 6px" }}>
          The {BATCHES_SHOWN} latest batches · {matching} open or matching · {inException} in exception
          {batches.error ? <span className="error"> · {batches.error}</span> : null}
        </p>
        <BatchTable rows={batches.rows} changes={batches.changes} now={batches.receivedAt ?? 0} openExceptions={openExceptions} onOpen={open} />
      </section>
    </>
  );
}
