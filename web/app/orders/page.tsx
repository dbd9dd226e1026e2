// /orders/: live order intake (the view is a client component; filters come from the URL, which
// under a static export is only known in the browser, hence the Suspense boundary).
import { Suspense } from "react";
import { OrdersView } from "./OrdersView";

export default function OrdersPage() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <OrdersView />
    </Suspense>
  );
}
