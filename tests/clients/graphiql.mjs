// Opens opslive's GraphiQL in Debian's Chromium, runs a subscription from its editor with a
// token in its Headers tab, and prints the result pane's text each time it changes (one JSON
// string per line), so a Rust test can commit rows and watch the page update.
//
//   node graphiql.mjs http://HOST/graphql TOKEN 'subscription { … }'
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, token, query] = process.argv.slice(2);
const profile = await mkdtemp(join(tmpdir(), "opslive-graphiql-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] ?? (await context.newPage());
// What a user would have typed: GraphiQL keeps its editors in localStorage.
await page.addInitScript(([q, headers]) => {
  localStorage.setItem("graphiql:query", q);
  localStorage.setItem("graphiql:headers", headers);
}, [query, JSON.stringify({ Authorization: `Bearer ${token}` })]);
page.on("pageerror", (e) => process.stderr.write(`page error: ${e}\n`));
await page.goto(url);
await page.locator(".graphiql-execute-button").click();
let last = "";
for (;;) {
  const text = await page.locator(".result-window .CodeMirror").innerText().catch(() => "");
  if (text !== last) {
    last = text;
    process.stdout.write(JSON.stringify(text) + "\n");
  }
  await page.waitForTimeout(20);
}
