// The dashboard end to end, in Debian's Chromium against the real server, a real PostgreSQL and
// the simulator (see environment.mjs): a warehouse lead sees only their warehouses (checked
// against SQL); a committed order appears in the orders table within a second; an alert fired by
// a burst shows on the overview and is acknowledged; the same alert reaches the demo's Slack, SMS
// and email stand-ins with its provenance and is acknowledged from the Slack message's link,
// signed out, and the Notifications page lists the contact points, mute timing and log; a KPI built in the builder equals SQL; the
// Explorer (GraphiQL) runs a live query; a query saved in the Explorer and an arranged overview
// stay the user's own across reloads, and an arrangement whose save fails (the server killed) is
// kept and saved once it is back; an expired token leads back to sign-in; a server killed under
// the page shows "reconnecting", then live data again without a reload or stale rows. The
// committed order and the restart are tried with the live socket in the page and in a worker.
//
//   npm run e2e          (needs `npm run build` and the opslive binary; E2E_OPSLIVE_BIN to choose it)
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { browser, freePort, kill9, opsliveBinary, pageRecorder, signIn, sql, startDemo, startServer, stopAll, waitOrExplain } from "./environment.mjs";

const WAREHOUSE_LEAD = "wanda@demo.opslive";
const OPS_MANAGER = "omar@demo.opslive";
const ADMIN = "ada@demo.opslive";
/** The warehouse lead's `warehouses` claim in the demo (src/demo/access.rs). */
const LEAD_WAREHOUSES = ["WH-BER", "WH-MAD"];

let demo;
let chromium;

before(async () => {
  demo = await startDemo({ rate: 10 });
  chromium = await browser();
});

after(async () => {
  await chromium?.close();
  await stopAll();
});

/** Polls `read` until it equals `expected()` (both may move while traffic flows). */
async function eventually(read, expected, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const [got, want] = [await read(), await expected()];
    if (JSON.stringify(got) === JSON.stringify(want)) return got;
    last = { got, want };
    if (Date.now() > deadline) assert.fail(`${what}: the page shows ${JSON.stringify(last.got)}, SQL says ${JSON.stringify(last.want)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Where the live socket runs (web/lib/live/runtime.ts): in the page, or in a worker that hands
 * the page batches. The app picks by the number of cores; these tests take each in turn.
 */
const SOCKET_PLACES = ["page", "worker"];

async function placeSocket(page, socket) {
  await page.addInitScript((where) => window.localStorage.setItem("opslive.liveSocket", where), socket);
}

/** The Orders page starts no worker of its own: a worker there is the live socket's. */
function assertSocketPlace(page, socket) {
  assert.equal(page.workers().length, socket === "worker" ? 1 : 0, `the live socket should run in the ${socket}`);
}

/** Inserts an order the way the shop would; returns its id and when the statement was sent. */
function commitOrder(database) {
  const sentAt = Date.now();
  const [[id]] = sql(
    database,
    `INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
     SELECT 'web', c.id, 'pending', 123.45, 'EUR', (SELECT id FROM warehouses ORDER BY id LIMIT 1), c.region, 3
     FROM customers c ORDER BY c.id LIMIT 1 RETURNING id`,
  );
  return { id, sentAt };
}

/** Runs a GraphQL document over HTTP as a fresh token of `role` and `sub`; returns `data`. */
async function gqlAs(role, sub, query, variables = {}, server = demo.dashboard) {
  const token = execFileSync(opsliveBinary(), ["token", "--config", demo.config, "--role", role, "--sub", sub, "--ttl", "5m"], { encoding: "utf8" }).trim();
  const response = await fetch(new URL("/graphql", server), {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, `GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** The KPI tiles of the overview as shown, in order: [{ name, id }]. */
function shownTiles(page) {
  return page.locator(".kpi-grid article[data-kpi]").evaluateAll((tiles) => tiles.map((t) => ({ name: t.getAttribute("data-kpi"), id: t.getAttribute("data-kpi-id") })));
}

/** The ids of the first `n` rows of the orders table as shown. */
function shownOrderIds(page, n) {
  return page.$$eval('[aria-label="Latest orders"] [role="row"][data-key]', (rows, n) => rows.map((r) => ({ key: r.getAttribute("data-key"), top: r.getBoundingClientRect().top })).sort((a, b) => a.top - b.top).slice(0, n).map((r) => r.key), n);
}

describe("the dashboard", () => {
  it("shows a warehouse lead only their warehouses, on every page it offers", async () => {
    const page = await chromium.context.newPage();
    await signIn(page, demo.dashboard, WAREHOUSE_LEAD);
    // Navigation follows the role: no orders, tickets or reconciliation for a warehouse lead.
    const nav = page.getByRole("navigation", { name: "Pages" });
    await nav.getByRole("link", { name: "Inventory" }).waitFor({ timeout: 60_000 });
    assert.deepEqual(await nav.getByRole("link").allInnerTexts(), ["Overview", "Alerts", "Inventory", "KPI builder", "Explorer", "Status"]);

    // The overview: no KPI computed over all warehouses leaks to them, and the row alerts they
    // see (stock below reorder point) are of their warehouses only.
    await page.getByText(/No KPI your role may read yet|Your role has no KPIs/).waitFor({ timeout: 30_000 });
    await page.locator('.alert-item[data-rule="Stock below reorder point"]').first().waitFor({ timeout: 30_000 });
    const instances = await page.locator(".alert-item[data-instance]").evaluateAll((items) => items.map((i) => i.getAttribute("data-instance")));
    const allWarehouses = sql(demo.database, "SELECT id FROM warehouses").map((r) => r[0]);
    for (const instance of instances) {
      // The instance is the row's key as JSON (`["APP-00001","WH-MAD"]`).
      const mentioned = allWarehouses.filter((w) => JSON.parse(instance).includes(w));
      assert.ok(mentioned.length === 1 && LEAD_WAREHOUSES.includes(mentioned[0]), `an alert of another warehouse: ${instance}`);
    }

    // Every role sees replication health (built-in KPIs carry no rows), pushed live: the demo's
    // source with the simulator's changes flowing.
    await page.waitForFunction(() => {
      const row = [...document.querySelectorAll('table[aria-label="Replication health"] tbody tr')].find((tr) => tr.cells[0]?.textContent === "shop");
      return row !== undefined && Number(row.cells[4]?.textContent) > 0;
    }, null, { timeout: 30_000 });

    // The Status page: ready, and every watched table of the demo listed with its rows.
    await nav.getByRole("link", { name: "Status" }).click();
    await page.getByTestId("readiness").filter({ hasText: /^ready$/ }).waitFor({ timeout: 30_000 });
    await page.locator('table[aria-label="Tables"] tbody tr[data-table="inventory"]').waitFor({ timeout: 30_000 });
    const listed = await page.locator('table[aria-label="Tables"] tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-table")).sort());
    assert.ok(listed.includes("orders") && listed.includes("tickets"), `tables on the status page: ${listed}`);

    await nav.getByRole("link", { name: "Inventory" }).click();
    const rows = page.locator("table.heatmap tbody tr[data-warehouse]");
    await rows.first().waitFor({ timeout: 60_000 });
    const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-warehouse")));
    const inSql = sql(demo.database, `SELECT DISTINCT warehouse_id FROM inventory WHERE warehouse_id IN (${LEAD_WAREHOUSES.map((w) => `'${w}'`).join(",")}) ORDER BY 1`).map((r) => r[0]);
    const everywhere = sql(demo.database, "SELECT count(DISTINCT warehouse_id) FROM inventory")[0][0];
    assert.ok(Number(everywhere) > inSql.length, "the fixture has warehouses the lead must not see");
    assert.deepEqual(shown, inSql);

    // The low-stock list counts exactly the lead's rows below their reorder point.
    await eventually(
      async () => Number(await page.getByTestId("low-stock-count").innerText()),
      () => Number(sql(demo.database, `SELECT count(*) FROM inventory WHERE on_hand < reorder_point AND warehouse_id IN ('WH-BER','WH-MAD')`)[0][0]),
      "rows below reorder point",
    );

    // A heat-map cell narrows the list to its warehouse and category (categories joined in the page).
    const cell = page.locator('table.heatmap tbody tr[data-warehouse="WH-BER"] td.heat-cell').first();
    const category = await page.locator("table.heatmap thead th").nth(1).innerText();
    await cell.click();
    await page.waitForURL((url) => url.searchParams.get("warehouse") === "WH-BER" && url.searchParams.get("category") === category);
    await eventually(
      async () => Number(await page.getByTestId("low-stock-count").innerText()),
      () => Number(sql(demo.database, `SELECT count(*) FROM inventory i JOIN products p USING (sku) WHERE i.warehouse_id = 'WH-BER' AND p.category = '${category}' AND i.on_hand < i.reorder_point`)[0][0]),
      "rows below reorder point in one cell",
    );
    await cell.click();
    await page.waitForURL((url) => !url.searchParams.has("warehouse"));

    // A SKU's drill-down lists only the lead's warehouses.
    const firstSku = page.locator('[aria-label="Low stock"] [role="row"][data-key] button.link').first();
    const sku = await firstSku.innerText();
    await firstSku.click();
    await page.waitForURL((url) => url.searchParams.get("sku") === sku);
    const drill = page.locator(`[aria-label="Stock of ${sku}"] [role="row"][data-key] [data-field="warehouseId"]`);
    await drill.first().waitFor();
    const drillWarehouses = (await drill.allInnerTexts()).sort();
    const skuInSql = sql(demo.database, `SELECT warehouse_id FROM inventory WHERE sku = '${sku}' AND warehouse_id IN ('WH-BER','WH-MAD') ORDER BY 1`).map((r) => r[0]);
    assert.deepEqual(drillWarehouses, skuInSql);
    await page.close();
  });

  it("shows the warehouse lead's alerts page with their warehouses only", async () => {
    const page = await chromium.context.newPage();
    await signIn(page, demo.dashboard, WAREHOUSE_LEAD);
    await page.goto(new URL("/alerts/", demo.dashboard).toString());
    const rows = page.locator('[aria-label="Alerts pending or firing"] tr[data-rule="Stock below reorder point"]');
    await rows.first().waitFor({ timeout: 30_000 });
    const texts = await rows.allInnerTexts();
    const others = sql(demo.database, "SELECT id FROM warehouses").map((r) => r[0]).filter((w) => !LEAD_WAREHOUSES.includes(w));
    for (const text of texts) for (const other of others) assert.ok(!text.includes(other), `an alert of ${other}: ${text}`);
    await page.close();
  });

  it("sends a user whose token expires back to sign in", async () => {
    const token = execFileSync(opsliveBinary(), ["token", "--config", demo.config, "--role", "ops_manager", "--sub", OPS_MANAGER, "--ttl", "10s"], { encoding: "utf8" }).trim();
    const page = await chromium.context.newPage();
    await page.goto(new URL("/signin/", demo.dashboard).toString());
    await page.getByLabel("Token").fill(token);
    await page.getByRole("button", { name: "Sign in with this token" }).click();
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Orders" }).waitFor({ timeout: 10_000 });
    await page.waitForURL((url) => url.pathname.startsWith("/signin") && url.searchParams.get("reason") === "expired", { timeout: 20_000 });
    await page.getByText("Your session expired").waitFor();
    await page.close();
  });

  for (const socket of SOCKET_PLACES)
  it(`shows an order committed to the database in the orders table within a second (socket in the ${socket})`, async () => {
    const page = await chromium.context.newPage();
    await placeSocket(page, socket);
    await signIn(page, demo.dashboard, OPS_MANAGER);
    await page.goto(new URL("/orders/", demo.dashboard).toString());
    await page.locator('[aria-label="Latest orders"] [role="row"][data-key]').first().waitFor({ timeout: 60_000 });
    await page.locator('.connection[data-state="live"]').waitFor();
    assertSocketPlace(page, socket);
    // Several commits, each timed from before the INSERT was sent to the row on screen.
    for (let i = 0; i < 3; i++) {
      const { id, sentAt } = commitOrder(demo.database);
      await page.locator(`[aria-label="Latest orders"] [role="row"][data-key="${id}"]`).waitFor({ timeout: 5_000 });
      const elapsed = Date.now() - sentAt;
      assert.ok(elapsed < 1_000, `order ${id} took ${elapsed} ms to appear`);
    }
    // A changed cell flashes, and only the changed cells of the row.
    const { id } = commitOrder(demo.database);
    const row = page.locator(`[aria-label="Latest orders"] [role="row"][data-key="${id}"]`);
    await row.waitFor({ timeout: 5_000 });
    assert.match((await row.getAttribute("class")) ?? "", /\bflash\b/, "a new row flashes whole");
    await page.waitForTimeout(1_300);
    sql(demo.database, `UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = ${id}`);
    await row.locator('[data-field="status"].flash', { hasText: "cancelled" }).waitFor({ timeout: 2_000 });
    assert.equal(await row.locator('[data-field="total"].flash').count(), 0, "an unchanged cell does not flash");
    await page.close();
  });

  it("shows an alert fired by a burst of orders on the overview, and acknowledges it", async () => {
    const page = await chromium.context.newPage();
    await signIn(page, demo.dashboard, OPS_MANAGER);
    await page.getByTestId("alerts-strip").waitFor({ timeout: 30_000 });
    // The demo's rule "Order intake spike" fires above 120 orders a minute in a channel.
    sql(
      demo.database,
      `INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
       SELECT 'store', c.id, 'paid', 10, 'EUR', (SELECT id FROM warehouses ORDER BY id LIMIT 1), c.region, 1
       FROM customers c, generate_series(1, 130) g WHERE c.id = (SELECT min(id) FROM customers)`,
    );
    const alert = page.locator('.alert-item[data-rule="Order intake spike"][data-state="FIRING"]').first();
    await alert.waitFor({ timeout: 15_000 });
    assert.match(await alert.innerText(), /fired by shop \d+\/[0-9A-F]+/, "provenance: the transaction that fired it");
    await alert.getByRole("button", { name: "Acknowledge" }).click();
    await page.locator('.alert-item[data-rule="Order intake spike"][data-acknowledged="true"]').first().waitFor({ timeout: 10_000 });
    assert.match(await page.locator('.alert-item[data-rule="Order intake spike"][data-acknowledged="true"]').first().innerText(), /acknowledged by omar@demo\.opslive/);
    await page.close();
  });

  it("sends a burst's alert to Slack, SMS and email, acknowledges it from the Slack link, and logs it on the Notifications page", async () => {
    sql(
      demo.database,
      `INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
       SELECT 'phone', c.id, 'paid', 10, 'EUR', (SELECT id FROM warehouses ORDER BY id LIMIT 1), c.region, 1
       FROM customers c, generate_series(1, 130) g WHERE c.id = (SELECT min(id) FROM customers)`,
    );
    const about = (m) => (m.title + m.body).includes("Order intake spike") && (m.title + m.body).includes("channel=phone");
    const deadline = Date.now() + 30_000;
    let messages = [];
    for (;;) {
      const received = await (await fetch(new URL("/messages.json", demo.inbox))).json();
      messages = received.filter(about);
      if (["slack", "sms", "email"].every((c) => messages.some((m) => m.channel === c))) break;
      if (Date.now() > deadline) assert.fail(`the stand-ins received ${JSON.stringify(messages.map((m) => [m.channel, m.title]))}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const slack = messages.find((m) => m.channel === "slack");
    assert.match(slack.body, /shop at \d+\/[0-9A-F]+, committed /, "provenance: the transaction that fired it");
    assert.match(messages.find((m) => m.channel === "sms").title, /^\[FIRING warning\] Order intake spike/);
    const [, ackUrl] = slack.links.find(([label]) => label === "Acknowledge");
    assert.equal(new URL(ackUrl).pathname, "/ack/");

    // Opened by whoever got the message, not signed in: a GET shows it, the button acknowledges.
    const page = await chromium.context.newPage();
    await page.goto(ackUrl);
    await page.getByRole("heading", { name: "Acknowledge alert" }).waitFor({ timeout: 15_000 });
    assert.match(await page.locator(".facts").innerText(), /Order intake spike/);
    const firing = async () => (await gqlAs("admin", ADMIN, "{ alerts { ruleName labels acknowledged acknowledgedBy } }")).alerts.find((a) => a.ruleName === "Order intake spike" && a.labels.channel === "phone");
    assert.equal((await firing()).acknowledged, false, "opening the link acknowledged nothing");
    await page.getByRole("button", { name: "Acknowledge" }).click();
    await page.getByRole("status").filter({ hasText: "Acknowledged by Demo Slack #ops (slack message)" }).waitFor({ timeout: 10_000 });
    const acked = await firing();
    assert.equal(acked.acknowledged, true);
    assert.equal(acked.acknowledgedBy, "Demo Slack #ops (slack message)");

    // The admin's Notifications page: the demo's contact points, its mute timing, and the log.
    await signIn(page, demo.dashboard, ADMIN);
    await page.goto(new URL("/notifications/", demo.dashboard).toString());
    const points = page.getByRole("table", { name: "Contact points" });
    await points.getByRole("cell", { name: /Demo Slack/ }).waitFor({ timeout: 15_000 });
    assert.equal(await points.locator("tbody tr").count(), 4);
    await page.getByRole("table", { name: "Mute timings" }).getByText("Sun 03:00–05:00 (Europe/Berlin)").waitFor({ timeout: 10_000 });
    await page.getByLabel("Status").selectOption("SENT");
    await page.getByRole("table", { name: "Notification log" }).locator("tr[data-status='SENT']", { hasText: "Order intake spike" }).first().waitFor({ timeout: 15_000 });
    await page.close();
  });

  it("builds a KPI whose preview and tile equal the SQL aggregate", async () => {
    const page = await chromium.context.newPage();
    await signIn(page, demo.dashboard, OPS_MANAGER);
    await page.goto(new URL("/kpis/", demo.dashboard).toString());
    const name = `Refunded phone orders ${Date.now()}`;
    await page.getByLabel("Table").selectOption("orders");
    await page.getByLabel("Aggregate").selectOption("COUNT");
    await page.getByLabel("Filter").fill('{"channel": {"eq": "phone"}, "status": {"eq": "refunded"}}');
    const expected = () => Number(sql(demo.database, "SELECT count(*) FROM orders WHERE channel = 'phone' AND status = 'refunded'")[0][0]);
    assert.ok(expected() > 0, "the fixture has refunded phone orders to count");
    const shown = async (locator) => {
      const text = (await locator.innerText()).replace(/[^0-9.-]/g, "");
      return text === "" ? null : Number(text);
    };
    const preview = page.getByTestId("kpi-preview-value");
    await preview.waitFor({ timeout: 20_000 });
    await eventually(() => shown(preview), expected, "the preview");
    await page.locator('input[placeholder="Orders per minute"]').fill(name);
    await page.getByRole("button", { name: "Save KPI" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor({ timeout: 10_000 });
    await page.getByRole("link", { name: "Overview" }).first().click();
    const tile = page.locator(`article[data-kpi="${name}"] [data-testid="kpi-value"]`);
    await tile.waitFor({ timeout: 20_000 });
    await eventually(() => shown(tile), expected, "the tile");
    await page.close();
  });

  it("runs an example subscription in the Explorer (GraphiQL) and shows the commit that follows", async () => {
    const page = await chromium.context.newPage();
    const recorder = pageRecorder(page);
    await signIn(page, demo.dashboard, "ada@demo.opslive");
    await page.goto(new URL("/explorer/", demo.dashboard).toString());
    // graphql/examples/orders-live.graphql: the latest orders of WH-BER as an incremental live query.
    await page.getByText("LatestOrdersLive").first().click({ timeout: 30_000 });
    // Run only once the tab's document is in the editor (right after the click, under load,
    // the editor can still hold the previous tab).
    const editor = page.locator(".graphiql-query-editor");
    await editor.getByText("subscription").first().waitFor({ timeout: 30_000 });
    await page.locator(".graphiql-execute-button").click();
    const response = page.locator(".graphiql-response");
    // The response first: CI keeps only the head and tail of a long failure.
    const shown = async () => `response:\n${await response.innerText()}\neditor:\n${await editor.innerText()}\n${recorder.explain()}`;
    await waitOrExplain(response.getByText('"reset"').first(), 30_000, shown);
    const [[id]] = sql(
      demo.database,
      `INSERT INTO orders (channel, customer_id, status, total, currency, warehouse_id, region, item_count)
       SELECT 'web', c.id, 'pending', 1, 'EUR', 'WH-BER', c.region, 1 FROM customers c ORDER BY c.id LIMIT 1 RETURNING id`,
    );
    await waitOrExplain(response.getByText(`"${id}"`).first(), 10_000, shown);
    await page.close();
  });

  it("keeps a query saved in the Explorer across a reload, opens it in the editor, and deletes it", async () => {
    const page = await chromium.context.newPage();
    await signIn(page, demo.dashboard, OPS_MANAGER);
    await page.goto(new URL("/explorer/", demo.dashboard).toString());
    const panel = page.getByRole("complementary", { name: "Saved queries" });
    const editor = page.locator(".graphiql-query-editor");
    // Start from an example tab's document, marked with a comment line of this run on top.
    await page.getByText("LatestOrdersLive").first().click({ timeout: 60_000 });
    await editor.getByText("subscription").first().waitFor({ timeout: 30_000 });
    const marker = `#saved_by_e2e_${Date.now()}`;
    await editor.locator(".view-lines").click();
    await page.keyboard.press("Control+Home");
    await page.keyboard.type(marker);
    await page.keyboard.press("Enter");
    await editor.getByText(marker).waitFor({ timeout: 10_000 });

    const name = `Live orders ${Date.now()}`;
    await panel.getByRole("button", { name: "Save", exact: true }).click();
    await panel.getByLabel("Saved query name").fill(name);
    await panel.getByRole("button", { name: "Save query" }).click();
    const item = panel.locator(`li[data-name="${name}"]`);
    await item.waitFor({ timeout: 10_000 });
    // Kept on the server for this user: the editor's text as it was.
    const { savedQueries } = await gqlAs("ops_manager", OPS_MANAGER, "{ savedQueries { name query variables } }");
    const stored = savedQueries.find((q) => q.name === name);
    assert.ok(stored, `saved queries: ${JSON.stringify(savedQueries.map((q) => q.name))}`);
    assert.ok(stored.query.startsWith(`${marker}\n`) && stored.query.includes("subscription LatestOrdersLive"), `stored text: ${stored.query.slice(0, 200)}`);
    assert.equal(stored.variables, null);

    // After a reload it is listed, and Open brings its text back into the (emptied) editor.
    await page.reload();
    await item.waitFor({ timeout: 60_000 });
    await editor.locator(".view-lines").waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "New tab" }).click();
    await editor.getByText(marker).waitFor({ state: "detached", timeout: 10_000 });
    await item.getByRole("button", { name: `Open ${name}` }).click();
    await editor.getByText(marker).waitFor({ timeout: 10_000 });
    await editor.getByText("subscription").first().waitFor({ timeout: 10_000 });

    // Delete (confirmed): gone from the list, and still gone after a reload.
    page.once("dialog", (dialog) => void dialog.accept());
    await item.getByRole("button", { name: `Delete ${name}` }).click();
    await item.waitFor({ state: "detached", timeout: 10_000 });
    await page.reload();
    await page.locator('aside.saved-queries[aria-busy="false"]').waitFor({ timeout: 60_000 });
    assert.equal(await item.count(), 0, "the deleted query is listed after a reload");
    const after = await gqlAs("ops_manager", OPS_MANAGER, "{ savedQueries { name } }");
    assert.ok(!after.savedQueries.some((q) => q.name === name), "the deleted query is still stored");
    await page.close();
  });

  it("keeps a user's arrangement of the overview across reloads, and only theirs", async () => {
    const page = await chromium.context.newPage();
    await signIn(page, demo.dashboard, OPS_MANAGER);
    const tiles = page.locator(".kpi-grid article[data-kpi]");
    await tiles.nth(2).waitFor({ timeout: 60_000 });
    const before = (await shownTiles(page)).map((t) => t.name);
    const hide = before[0];
    const front = before[before.length - 1];
    const expected = [front, ...before.filter((n) => n !== hide && n !== front)];

    await page.getByRole("button", { name: "Arrange" }).click();
    await page.locator(`article[data-kpi="${hide}"]`).getByRole("button", { name: "Hide" }).click();
    await page.getByRole("region", { name: "Hidden KPIs" }).locator(`li[data-kpi="${hide}"]`).waitFor();
    const earlier = page.locator(`article[data-kpi="${front}"]`).getByRole("button", { name: "Move earlier" });
    for (let i = 0; i < before.length && !(await earlier.isDisabled()); i++) await earlier.click();
    assert.deepEqual((await shownTiles(page)).map((t) => t.name), expected, "the arranged order before saving");
    await page.getByRole("button", { name: "Save layout" }).click();
    await page.getByRole("button", { name: "Save layout" }).waitFor({ state: "detached", timeout: 10_000 });
    assert.deepEqual((await shownTiles(page)).map((t) => t.name), expected, "the order once saved");

    // A reload shows the saved arrangement: the order, and the hidden tile left out.
    await page.reload();
    await tiles.nth(expected.length - 1).waitFor({ timeout: 60_000 });
    assert.deepEqual((await shownTiles(page)).map((t) => t.name), expected, "the order after a reload");
    assert.equal(await page.locator(`article[data-kpi="${hide}"]`).count(), 0, "the hidden tile is shown");
    await page.getByTestId("hidden-count").filter({ hasText: "1 KPI hidden" }).waitFor();

    // Another user's overview keeps the server's order (by id), the tile hidden here included.
    await signIn(page, demo.dashboard, ADMIN);
    await page.locator(`article[data-kpi="${hide}"]`).waitFor({ timeout: 60_000 });
    const theirs = await shownTiles(page);
    for (const name of before) assert.ok(theirs.some((t) => t.name === name), `${name} is missing for the admin`);
    const ids = theirs.map((t) => Number(t.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `the admin's tiles are not in the server's order: ${JSON.stringify(theirs)}`);
    assert.equal(await page.getByTestId("hidden-count").count(), 0);
    await page.close();
  });

  it("keeps an arrangement whose save failed, says why, and saves it once the server is back", async () => {
    // Its own server (and app database): the arrangement saved here is nobody else's.
    const port = await freePort();
    let { server, url } = await startServer(demo, port);
    try {
      // Its app database starts without the demo's KPIs: two to arrange.
      // (Orders load first after a start: both count orders.)
      for (const input of [
        { name: "e2e orders", table: "orders", aggregate: "COUNT" },
        { name: "e2e web orders", table: "orders", aggregate: "COUNT", filter: { channel: { eq: "web" } } },
      ]) {
        await gqlAs("admin", ADMIN, "mutation($input: KpiInput!) { createKpi(input: $input) { id } }", { input }, url);
      }
      const page = await chromium.context.newPage();
      await signIn(page, url, ADMIN);
      const tiles = page.locator(".kpi-grid article[data-kpi]");
      await tiles.nth(1).waitFor({ timeout: 60_000 });
      const hide = (await shownTiles(page))[0].name;
      await page.getByRole("button", { name: "Arrange" }).click();
      await page.locator(`article[data-kpi="${hide}"]`).getByRole("button", { name: "Hide" }).click();
      const hiddenInDraft = page.getByRole("region", { name: "Hidden KPIs" }).locator(`li[data-kpi="${hide}"]`);
      await hiddenInDraft.waitFor();

      await kill9(server);
      await page.getByRole("button", { name: "Save layout" }).click();
      const refused = page.getByRole("alert").filter({ hasText: "Layout not saved" });
      await refused.waitFor({ timeout: 10_000 });
      // Nothing the user arranged is lost: still arranging, the tile still hidden.
      await hiddenInDraft.waitFor();
      assert.equal(await page.locator(`article[data-kpi="${hide}"]`).count(), 0, "the hidden tile came back");

      ({ server } = await startServer(demo, port));
      await page.getByRole("button", { name: "Save layout" }).click();
      await page.getByRole("button", { name: "Save layout" }).waitFor({ state: "detached", timeout: 30_000 });
      assert.equal(await refused.count(), 0, "the error outlived a save that worked");
      await page.reload();
      await tiles.first().waitFor({ timeout: 60_000 });
      await page.getByTestId("hidden-count").filter({ hasText: "1 KPI hidden" }).waitFor({ timeout: 10_000 });
      assert.equal(await page.locator(`article[data-kpi="${hide}"]`).count(), 0, "the saved layout lost the hidden tile");
      await page.close();
    } finally {
      // The next test's server takes the same slot.
      await kill9(server);
    }
  });

  for (const socket of SOCKET_PLACES)
  it(`shows reconnecting while the server is down, then live data again without a reload (socket in the ${socket})`, async () => {
    const port = await freePort();
    let { server, url } = await startServer(demo, port);
    const page = await chromium.context.newPage();
    await placeSocket(page, socket);
    await signIn(page, url, OPS_MANAGER);
    await page.goto(new URL("/orders/", url).toString());
    await page.locator('[aria-label="Latest orders"] [role="row"][data-key]').first().waitFor({ timeout: 60_000 });
    await page.locator('.connection[data-state="live"]').waitFor();
    assertSocketPlace(page, socket);
    await page.evaluate(() => {
      window.__sameDocument = true;
    });

    await kill9(server);
    await page.locator('.connection[data-state="reconnecting"], .connection[data-state="offline"]').waitFor({ timeout: 10_000 });
    assert.match(await page.locator(".connection").innerText(), /reconnecting|offline/);
    // Values shown while not live are greyed.
    const greyed = await page.locator('[aria-label="Latest orders"]').evaluate((el) => Number(getComputedStyle(el).opacity));
    assert.ok(greyed < 1, `the table should be greyed while reconnecting (opacity ${greyed})`);

    const [[lastBeforeRestart]] = sql(demo.database, "SELECT max(id) FROM orders");
    ({ server } = await startServer(demo, port));
    await page.locator('.connection[data-state="live"]').waitFor({ timeout: 60_000 });
    // The table takes the new server's fresh result (after its snapshot): orders placed since.
    await eventually(
      async () => Number((await shownOrderIds(page, 1))[0] ?? 0) > Number(lastBeforeRestart),
      () => true,
      "orders placed after the restart",
      60_000,
    );
    const { id } = commitOrder(demo.database);
    await page.locator(`[aria-label="Latest orders"] [role="row"][data-key="${id}"]`).waitFor({ timeout: 5_000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
    // No stale rows: the top of the table is the latest orders in SQL.
    await eventually(
      () => shownOrderIds(page, 10),
      () => sql(demo.database, "SELECT id FROM orders ORDER BY created_at DESC, id DESC LIMIT 10").map((r) => r[0]),
      "the latest orders",
    );
    await page.close();
    // The next round starts a server on the same slot.
    await kill9(server);
  });
});
