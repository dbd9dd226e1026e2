// What the frame benchmarks share: opening the page to measure, a dashboard route or the floor
// (floor.html: the Orders table's live query shown with none of the app).
import { readFileSync } from "node:fs";

/**
 * Chromium flags for a run that may measure the floor: the floor page is served by the bench on
 * the dashboard's origin, and without a network address of its own Chromium's Local Network
 * Access checks would refuse its socket to 127.0.0.1. Every run launches the same way.
 */
export const FLOOR_BROWSER_ARGS = ["--disable-features=LocalNetworkAccessChecks"];

const DEFAULT_READY = '[role="row"][data-key], [data-testid="kpi-value"]';

/** Opens `path` (a dashboard route, or `floor`) on a signed-in page and waits until it shows data. */
export async function openPage(page, base, path, ready = DEFAULT_READY) {
  if (path === "floor") {
    const floorUrl = new URL("/__frame-floor", base).toString();
    await page.route(floorUrl, (route) => route.fulfill({ contentType: "text/html", body: readFileSync(new URL("./floor.html", import.meta.url), "utf8") }));
    await page.goto(floorUrl);
    await page.locator('[data-field="id"]:not(:empty)').first().waitFor({ timeout: 60_000 });
  } else {
    await page.goto(new URL(path, base).toString());
    await page.locator(ready).first().waitFor({ timeout: 60_000 });
  }
}
