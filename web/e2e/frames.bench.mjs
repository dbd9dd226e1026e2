// Frame timing of a dashboard page under live traffic (a benchmark, not a test: `node
// e2e/frames.bench.mjs URL [path] [seconds] [selector to wait for]` against a running `opslive demo`, ideally with a high
// `--rate`). Signs in as the operations manager, waits for the page to fill, then records
// requestAnimationFrame deltas and long tasks, unthrottled and with 4× CPU throttling
// (unthrottled headless frames sit at the 16.7 ms ceiling; the throttled run is the one that tells).
// The path `floor` measures floor.html instead: the Orders table's live query shown with none of
// the app, the least any page showing those updates pays on this machine.
import { browser, signIn } from "./environment.mjs";
import { FLOOR_BROWSER_ARGS, openPage } from "./frames.mjs";

const [base = "http://127.0.0.1:8080/", path = "/orders/", secondsText = "10", ready = '[role="row"][data-key], [data-testid="kpi-value"]'] = process.argv.slice(2);
const seconds = Number(secondsText);

function percentile(sorted, p) {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const chromium = await browser({ args: FLOOR_BROWSER_ARGS });
const page = await chromium.context.newPage();
await page.setViewportSize({ width: 1400, height: 1000 });
await page.addInitScript(() => {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
  }).observe({ type: "longtask", buffered: true });
  // On-screen cell updates: a cell (`[data-field]`) whose text changed, or that arrived with a new row.
  window.__cellUpdates = 0;
  const cell = (node) => (node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement)?.closest?.("[data-field]");
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "characterData") window.__cellUpdates += cell(r.target) ? 1 : 0;
      else if (cell(r.target)) window.__cellUpdates += 1;
      else
        for (const n of r.addedNodes)
          if (n.nodeType === Node.ELEMENT_NODE) window.__cellUpdates += n.matches("[data-field]") ? 1 : n.querySelectorAll("[data-field]").length;
    }
  });
  document.addEventListener("DOMContentLoaded", () => observer.observe(document.body, { subtree: true, childList: true, characterData: true }));
});
await signIn(page, base, "omar@demo.opslive");
await openPage(page, base, path, ready);
await page.waitForTimeout(2_000);
const cdp = await chromium.context.newCDPSession(page);
for (const rate of [1, 4]) {
  await cdp.send("Emulation.setCPUThrottlingRate", { rate });
  await page.evaluate(() => {
    window.__longTasks = [];
    window.__cellUpdates = 0;
  });
  const cellsBefore = await page.evaluate(() => document.querySelectorAll(".flash").length);
  const deltas = await page.evaluate(
    (ms) =>
      new Promise((resolve) => {
        const out = [];
        let last = performance.now();
        const end = last + ms;
        const step = (now) => {
          out.push(now - last);
          last = now;
          if (now < end) requestAnimationFrame(step);
          else resolve(out);
        };
        requestAnimationFrame(step);
      }),
    seconds * 1000,
  );
  const [longTasks, cellUpdates] = await page.evaluate(() => [window.__longTasks, window.__cellUpdates]);
  const sorted = [...deltas].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      path,
      cpuThrottling: rate,
      frames: deltas.length,
      p50ms: +percentile(sorted, 50).toFixed(1),
      p95ms: +percentile(sorted, 95).toFixed(1),
      p99ms: +percentile(sorted, 99).toFixed(1),
      longTasks: longTasks.length,
      longestTaskMs: +Math.max(0, ...longTasks).toFixed(1),
      flashingCellsAtStart: cellsBefore,
      cellUpdatesPerSecond: Math.round(cellUpdates / seconds),
    }),
  );
}
await chromium.close();
