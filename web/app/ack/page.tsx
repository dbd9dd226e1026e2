// /ack/?t=…: the page a message's "Acknowledge" link opens. Opening it changes nothing (link
// scanners and chat unfurlers open links too); the button posts the signed ticket. It works
// signed out — whoever holds the message may acknowledge — and records the signed-in person
// when there is one.
import { Suspense } from "react";
import { AcknowledgeView } from "./AcknowledgeView";

export default function AcknowledgePage() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <AcknowledgeView />
    </Suspense>
  );
}
