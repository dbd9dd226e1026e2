// Where a dashboard page's main thread goes under live traffic (a benchmark aid, not a test:
// `node e2e/profile.bench.mjs URL [path] [seconds] [throttling]` against a running `opslive demo`).
// Signs in as the operations manager, waits for the page to fill, then records a Chromium trace
// (the DevTools timeline categories), then a JavaScript CPU profile, at the given CPU throttling, and prints the main thread's busy time by kind of work (script, style, layout,
// paint, garbage collection, …) and the JavaScript functions with the most self time. It
// answers "what are the slow frames made of", which frame timing alone does not.
import { browser, signIn } from "./environment.mjs";
import { FLOOR_BROWSER_ARGS, openPage } from "./frames.mjs";

const [base = "http://127.0.0.1:8080/", path = "/orders/", secondsText = "8", throttlingText = "4"] = process.argv.slice(2);
const seconds = Number(secondsText);
const throttling = Number(throttlingText);

const chromium = await browser({ args: FLOOR_BROWSER_ARGS });
const page = await chromium.context.newPage();
await page.setViewportSize({ width: 1400, height: 1000 });
// An experiment's CSS (PROFILE_CSS='.flash::after{display:none}'): what a page costs without a part of it.
if (process.env.PROFILE_CSS)
  await page.addInitScript((css) => document.addEventListener("DOMContentLoaded", () => document.head.append(Object.assign(document.createElement("style"), { textContent: css }))), process.env.PROFILE_CSS);
await signIn(page, base, "omar@demo.opslive");
await openPage(page, base, path);
await page.waitForTimeout(2_000);

const cdp = await chromium.context.newCDPSession(page);
await cdp.send("Emulation.setCPUThrottlingRate", { rate: throttling });
const events = [];
cdp.on("Tracing.dataCollected", ({ value }) => events.push(...value));
const finished = new Promise((resolve) => cdp.once("Tracing.tracingComplete", resolve));
await cdp.send("Tracing.start", {
  transferMode: "ReportEvents",
  traceConfig: {
    includedCategories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute"],
  },
});
await page.waitForTimeout(seconds * 1000);
await cdp.send("Tracing.end");
await finished;
// JavaScript by function: the sampling profiler, in a run of its own (inside the trace it costs
// more than it measures).
await cdp.send("Profiler.enable");
await cdp.send("Profiler.setSamplingInterval", { interval: 500 });
await cdp.send("Profiler.start");
await page.waitForTimeout(seconds * 1000);
const { profile } = await cdp.send("Profiler.stop");
await cdp.send("Emulation.setCPUThrottlingRate", { rate: 1 });
await chromium.close();

// The renderer's main thread: the thread that ran the page's animation frames.
const mainThread = (() => {
  const counts = new Map();
  for (const e of events) if (e.name === "FireAnimationFrame") counts.set(`${e.pid}:${e.tid}`, (counts.get(`${e.pid}:${e.tid}`) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
})();
if (!mainThread) throw new Error("the trace holds no animation frame");
const onMain = events.filter((e) => `${e.pid}:${e.tid}` === mainThread);

// Self time per top-level kind of work: complete events ("X") nest, so a child's time is taken
// out of its parent's.
const KINDS = {
  FunctionCall: "script", EvaluateScript: "script", FireAnimationFrame: "script", TimerFire: "script", EventDispatch: "script",
  RunMicrotasks: "script", "v8.callFunction": "script", "V8.Execute": "script",
  UpdateLayoutTree: "style", RecalculateStyles: "style", ParseAuthorStyleSheet: "style",
  Layout: "layout", UpdateLayerTree: "layer tree", PrePaint: "pre-paint", Paint: "paint", Layerize: "layerize",
  "MajorGC": "gc", "MinorGC": "gc", "V8.GC_SCAVENGER": "gc", BlinkGC: "gc",
  HitTest: "hit test", CommitLoad: "other", ParseHTML: "other",
};
const complete = onMain.filter((e) => e.ph === "X" && typeof e.dur === "number").sort((a, b) => a.ts - b.ts || b.dur - a.dur);
const selfEntries = [];
let busy = 0;
const open = [];
// Tasks over 50 ms (what the Long Tasks API reports), each with what it was made of.
const longTasks = [];
for (const e of complete) {
  while (open.length && open[open.length - 1].end <= e.ts) open.pop();
  const parent = open[open.length - 1];
  const entry = { name: e.name, end: e.ts + e.dur, self: e.dur, root: parent ? parent.root : null, depth: open.length };
  if (parent) parent.self -= e.dur;
  else {
    busy += e.dur;
    if (e.dur > 50_000) {
      entry.root = { dur: e.dur, entries: [] };
      longTasks.push(entry.root);
    }
  }
  entry.root?.entries.push(entry);
  open.push(entry);
  selfEntries.push(entry);
}
const byKind = new Map();
for (const entry of selfEntries) {
  const kind = KINDS[entry.name] ?? `other: ${entry.name}`;
  byKind.set(kind, (byKind.get(kind) ?? 0) + entry.self);
}

// The sampling profiler's self time per function and per script.
const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
const selfByFunction = new Map();
const selfByScript = new Map();
profile.samples.forEach((id, i) => {
  const frame = nodes.get(id);
  if (!frame) return;
  const delta = profile.timeDeltas[i] ?? 0;
  const url = (frame.url ?? "").split("/").pop();
  const name = `${frame.functionName || "(anonymous)"}${url ? ` ${url}:${frame.lineNumber + 1}:${frame.columnNumber + 1}` : ""}`;
  selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + delta);
  const script = url || (frame.functionName.startsWith("(") ? frame.functionName : "(native)");
  selfByScript.set(script, (selfByScript.get(script) ?? 0) + delta);
});

const ms = (us) => +(us / 1000).toFixed(1);
const frames = onMain.filter((e) => e.name === "FireAnimationFrame").length;
console.log(JSON.stringify({ path, cpuThrottling: throttling, seconds, animationFrames: frames, mainThreadBusyMs: ms(busy) }));
console.log("main thread self time by kind (ms):");
for (const [kind, us] of [...byKind].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${String(ms(us)).padStart(8)}  ${kind}`);
// What each long task ran (its first two levels), and so what kind of task it was: a rendering
// frame (an animation frame, or style, layout and paint without one), a message, a timer, …
const RENDERING = new Set(["FireAnimationFrame", "UpdateLayoutTree", "Layout", "Paint"]);
const longByKind = new Map();
for (const task of longTasks) {
  task.ran = [...new Set(task.entries.filter((e) => e.depth > 0 && e.depth <= 2).map((e) => e.name))];
  const kind = task.ran.some((name) => RENDERING.has(name))
    ? "rendering frame"
    : (["HandlePostMessage", "TimerFire", "EventDispatch", "FunctionCall"].find((name) => task.ran.includes(name)) ?? task.ran[0] ?? "other");
  longByKind.set(kind, (longByKind.get(kind) ?? 0) + 1);
}
console.log(`tasks over 50 ms: ${longTasks.length} (${[...longByKind].map(([k, n]) => `${k} ${n}`).join(", ")}); the longest, by kind (ms):`);
for (const task of longTasks.sort((a, b) => b.dur - a.dur).slice(0, 5)) {
  const kinds = new Map();
  for (const entry of task.entries) {
    const kind = KINDS[entry.name] ?? entry.name;
    kinds.set(kind, (kinds.get(kind) ?? 0) + entry.self);
  }
  const parts = [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([kind, us]) => `${kind} ${ms(us)}`);
  console.log(`  ${String(ms(task.dur)).padStart(8)}  ${parts.join(", ")}  [${task.ran.slice(0, 6).join(", ")}]`);
}
console.log("self time by script (ms, sampled):");
for (const [name, us] of [...selfByScript].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`  ${String(ms(us)).padStart(8)}  ${name}`);
console.log("JavaScript self time by function (ms, sampled):");
for (const [name, us] of [...selfByFunction].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${String(ms(us)).padStart(8)}  ${name}`);
