// /status/: is the server ready, how each source's replication stands, and each watched table.
import { StatusView } from "./StatusView";

export default function StatusPage() {
  return <StatusView />;
}
