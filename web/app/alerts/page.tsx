// /alerts/: rules, live instances with provenance, acknowledge, silences and history (`?rule=`
// is read in the browser, hence the Suspense boundary under a static export).
import { Suspense } from "react";
import { AlertsView } from "./AlertsView";

export default function AlertsPage() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <AlertsView />
    </Suspense>
  );
}
