// /support/: tickets per queue and priority, first-response waits and agent availability, live.
import { SupportView } from "./SupportView";

export default function SupportPage() {
  return <SupportView />;
}
