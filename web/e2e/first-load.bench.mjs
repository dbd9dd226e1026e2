// First-load JavaScript per page of the static export (a measurement, not a test: `node
// e2e/first-load.bench.mjs [out directory]` after `npm run build`). For each page, the scripts
// its HTML loads before anything runs, summed raw and gzip-compressed (level 9, as a server
// would send them); code a page loads later on demand (GraphiQL on the Explorer) is not counted.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const out = process.argv[2] ?? new URL("../out", import.meta.url).pathname;
const pages = [
  ["Overview", "index.html"],
  ["Orders", "orders/index.html"],
  ["Inventory", "inventory/index.html"],
  ["Support", "support/index.html"],
  ["Reconciliation", "reconciliation/index.html"],
  ["Alerts", "alerts/index.html"],
  ["KPI builder", "kpis/index.html"],
  ["Explorer", "explorer/index.html"],
  ["Status", "status/index.html"],
];

const kb = (bytes) => `${Math.round(bytes / 1024)} KB`;
console.log("| page | scripts | raw | gzip |\n|---|---|---|---|");
for (const [name, file] of pages) {
  const html = join(out, file);
  if (!existsSync(html)) {
    console.log(`| ${name} | missing: ${file} | | |`);
    continue;
  }
  const sources = new Set([...readFileSync(html, "utf8").matchAll(/<script[^>]+src="([^"]+)"/g)].map((m) => m[1]));
  let raw = 0;
  let gzip = 0;
  for (const src of sources) {
    const path = join(out, src.replace(/^\//, ""));
    if (!existsSync(path)) throw new Error(`${file} loads ${src}, which the export does not have`);
    const bytes = readFileSync(path);
    raw += bytes.length;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  console.log(`| ${name} | ${sources.size} | ${kb(raw)} | ${kb(gzip)} |`);
}
