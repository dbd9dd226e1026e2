// The Explorer's starting points: `graphql/examples/*.graphql`, read when the page is built (this
// runs in the build, never in the browser), each a tab named after its file.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface Example {
  readonly name: string;
  readonly query: string;
}

export function readExamples(dir: string = join(process.cwd(), "..", "graphql", "examples")): Example[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith(".graphql"))
    .sort()
    .map((file) => ({ name: file.replace(/\.graphql$/, ""), query: readFileSync(join(dir, file), "utf8") }));
}
