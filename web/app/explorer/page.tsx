// /explorer/: GraphiQL with the examples of graphql/examples/ as tabs (read at build time).
import { ExplorerView } from "./ExplorerView";
import { readExamples } from "./examples";

export default function ExplorerPage() {
  return <ExplorerView examples={readExamples()} />;
}
