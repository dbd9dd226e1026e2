// The end-to-end tests' world: `opslive demo` (a private PostgreSQL loaded with the fixtures, the
// simulator writing into it, opslive serving the built dashboard) started on free ports, a second
// `opslive serve` on the same database that a test may kill -9 and start again, SQL through psql,
// and Debian's Chromium through playwright-core (no browser download). Everything started here is
// stopped by `stopAll` (the demo with SIGINT, so it stops its database).
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const WEB_OUT = resolve(here, "../out");
const REPO = resolve(here, "../..");

/** The opslive binary: $E2E_OPSLIVE_BIN, else the debug build under $CARGO_TARGET_DIR or target/. */
export function opsliveBinary() {
  const candidates = [process.env.E2E_OPSLIVE_BIN, join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug/opslive")].filter(Boolean);
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`no opslive binary (looked at ${candidates.join(", ")}): run \`cargo build --bin opslive\` or set E2E_OPSLIVE_BIN`);
  return resolve(found);
}

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const started = [];

/** Starts a process whose output is kept (and echoed with E2E_VERBOSE=1). */
function launch(name, command, args, env = {}) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const record = { name, child, output: "", listeners: new Set() };
  const take = (chunk) => {
    const text = chunk.toString();
    record.output += text;
    if (process.env.E2E_VERBOSE) process.stderr.write(text.replace(/^/gm, `[${name}] `));
    for (const listener of record.listeners) listener();
  };
  child.stdout.on("data", take);
  child.stderr.on("data", take);
  started.push(record);
  return record;
}

function waitForOutput(record, pattern, timeoutMs) {
  return new Promise((resolveMatch, reject) => {
    const check = () => {
      const match = pattern.exec(record.output);
      if (match) {
        done();
        resolveMatch(match);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${record.name} did not print ${pattern} within ${timeoutMs} ms; its output:\n${record.output.slice(-3000)}`));
    }, timeoutMs);
    const exited = () => {
      done();
      reject(new Error(`${record.name} exited (${record.child.exitCode}) before printing ${pattern}; its output:\n${record.output.slice(-3000)}`));
    };
    const done = () => {
      clearTimeout(timer);
      record.listeners.delete(check);
      record.child.off("exit", exited);
    };
    record.listeners.add(check);
    record.child.on("exit", exited);
    check();
  });
}

export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** `opslive demo` on free ports with the built dashboard; resolves with its URLs and files. */
export async function startDemo({ rate = 10 } = {}) {
  if (!existsSync(join(WEB_OUT, "index.html"))) throw new Error(`the dashboard is not built (${WEB_OUT}): run \`npm run build\` in web/`);
  const dataDir = mkdtempSync(join(tmpdir(), "opslive-e2e-"));
  // PostgreSQL runs as `postgres` when we are root: it must be able to reach the directory.
  chmodSync(dataDir, 0o755);
  const demo = launch("demo", opsliveBinary(), ["demo", "--data-dir", dataDir, "--pg-port", "0", "--listen", "127.0.0.1:0", "--web-dir", WEB_OUT, "--rate", String(rate)]);
  const [, dashboard] = await waitForOutput(demo, /dashboard\s+(http:\/\/\S+)/, 120_000);
  const [, database] = await waitForOutput(demo, /shop\s+(postgres:\/\/\S+)/, 5_000);
  const [, inbox] = await waitForOutput(demo, /notified\s+(http:\/\/\S+)/, 5_000);
  return { demo, dashboard, database, inbox, dataDir, config: join(dataDir, "opslive.toml") };
}

/** A second server on the demo's database, configuration and secret (so its tokens hold across restarts); resolves once it is ready. */
export async function startServer(demo, port) {
  const env = {
    OPSLIVE_LISTEN: `127.0.0.1:${port}`,
    OPSLIVE_WEB_DIR: WEB_OUT,
    OPSLIVE_DATA_DIR: join(demo.dataDir, "e2e-server"),
    OPSLIVE_SOURCES__SHOP__SLOT: "opslive_e2e",
    // A binlog stream of its own: MariaDB drops a replica's stream when another registers with its id.
    OPSLIVE_SOURCES__HELPDESK__SERVER_ID: "1073741000",
    OPSLIVE_APP_DATABASE__URL: demo.database.replace(/\/shop$/, "/opslive_e2e"),
  };
  const server = launch("serve", opsliveBinary(), ["serve", "--config", demo.config], env);
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`opslive serve exited (${server.child.exitCode}):\n${server.output.slice(-3000)}`);
    // Ready, not only listening: until its source has read the catalog a KPI on `orders` is refused as NOT_READY.
    const ready = await fetch(new URL("/readyz", url)).then((r) => r.ok).catch(() => false);
    if (ready) return { server, url };
    if (Date.now() > deadline) throw new Error(`opslive serve did not become ready (/readyz):\n${server.output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function kill9(record) {
  return new Promise((resolveExit) => {
    if (record.child.exitCode !== null) return resolveExit();
    record.child.once("exit", () => resolveExit());
    record.child.kill("SIGKILL");
  });
}

/** Runs SQL with psql; returns the rows as arrays of text. */
export function sql(database, statement) {
  const out = execFileSync("psql", [database, "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", statement], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((line) => line !== "" && !/^(INSERT|UPDATE|DELETE) \d/.test(line))
    .map((line) => line.split("\t"));
}

export async function browser({ args = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "opslive-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", ...args],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Signs in through the sign-in page's dev login as `sub`; resolves on the first page after it. */
export async function signIn(page, baseUrl, sub) {
  await page.goto(new URL("/signin/", baseUrl).toString());
  await page.locator(`button[data-sub="${sub}"]`).click();
  await page.waitForURL((url) => !url.pathname.startsWith("/signin"), { timeout: 15_000 });
}

/**
 * Keeps what a page said and heard: console messages, uncaught errors, WebSocket frames (the
 * last 40, cut to 300 characters). `explain()` is for a failure message, so a wait that timed
 * out in CI says what the page had instead.
 */
export function pageRecorder(page) {
  const lines = [];
  const keep = (line) => {
    lines.push(line.length > 300 ? `${line.slice(0, 300)}…` : line);
    if (lines.length > 40) lines.shift();
  };
  page.on("console", (m) => keep(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => keep(`pageerror: ${e.message}`));
  page.on("websocket", (ws) => {
    keep(`ws open ${ws.url()}`);
    ws.on("framesent", (f) => keep(`ws > ${f.payload}`));
    ws.on("framereceived", (f) => keep(`ws < ${f.payload}`));
    ws.on("close", () => keep(`ws closed ${ws.url()}`));
  });
  return { explain: () => lines.join("\n") };
}

/** Waits for `locator`; a timeout fails with `context()` (what the page showed and heard). */
export async function waitOrExplain(locator, timeout, context) {
  try {
    await locator.waitFor({ timeout });
  } catch (e) {
    throw new Error(`${e.message}\n--- the page ---\n${await context()}`);
  }
}

export async function stopAll() {
  for (const record of started.reverse()) {
    if (record.child.exitCode !== null || record.child.signalCode !== null) continue;
    const exited = new Promise((r) => record.child.once("exit", r));
    record.child.kill(record.name === "demo" ? "SIGINT" : "SIGKILL");
    const timeout = new Promise((r) => setTimeout(r, 30_000));
    await Promise.race([exited, timeout]);
    if (record.child.exitCode === null && record.child.signalCode === null) record.child.kill("SIGKILL");
  }
}

export function demoUsers(config) {
  return [...readFileSync(config, "utf8").matchAll(/sub = "([^"]+)"\s*\nrole = "([^"]+)"/g)].map((m) => ({ sub: m[1], role: m[2] }));
}
