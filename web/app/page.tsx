// /: the Overview — firing alerts and KPI tiles (see app/overview/).
import { OverviewView } from "./overview/OverviewView";

export default function OverviewPage() {
  return <OverviewView />;
}
