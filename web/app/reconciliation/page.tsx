// /reconciliation/: batches matching live and their exceptions (`?batch=` is read in the
// browser, hence the Suspense boundary under a static export).
import { Suspense } from "react";
import { ReconciliationView } from "./ReconciliationView";

export default function ReconciliationPage() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <ReconciliationView />
    </Suspense>
  );
}
