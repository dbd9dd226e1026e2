// /inventory/: stock against reorder points, live (the view reads `?sku=` from the URL, known
// only in the browser under a static export, hence the Suspense boundary).
import { Suspense } from "react";
import { InventoryView } from "./InventoryView";

export default function InventoryPage() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <InventoryView />
    </Suspense>
  );
}
